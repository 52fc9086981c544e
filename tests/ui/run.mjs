#!/usr/bin/env node
// Browser test of the management web UI in headless Chromium.
//
//   node tests/ui/run.mjs BASE_URL [USER PASS] [--screenshots DIR] [--amqp URL]
//                         [--timeout SECONDS] [--full] [--headed]
//
// BASE_URL serves the UI at / and the management API at /api (the broker's
// HTTP port, or tests/ui/devserver.mjs in front of another broker).
// Flow: log in, declare a queue with the add-queue form, publish a message to it
// through the default exchange's publish form, wait for the queue list to count
// it, get it on the queue page and check the payload, delete the queue and check
// it is gone (in the UI and with the API). The queue name holds a space, a slash
// and HTML markup, so URL encoding and escaping are checked on the way.
// --full also drives the other forms: vhosts, users and permissions, an
// exchange with a binding to the queue and its publish form (routed / not
// routed), purge, definitions export and import, and (with --amqp) closing a
// connection with a reason.
// --screenshots DIR also saves PNGs of the main pages. --amqp URL (for example
// amqp://guest:guest@127.0.0.1:5672/) keeps an AMQP connection with a consumer
// open while the screenshots are taken, so connections and channels show rows.
// Exits 1 with the failing step on failure.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { openConsumer } from './amqp-mini.mjs';

function usage(msg) {
  if (msg) console.error(`run.mjs: ${msg}`);
  console.error('usage: node tests/ui/run.mjs BASE_URL [USER PASS] [--screenshots DIR] [--amqp URL] [--timeout SECONDS] [--full] [--headed]');
  process.exit(2);
}

const positional = [];
const opt = { screenshots: null, amqp: null, timeout: 120, headed: false, full: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--screenshots') opt.screenshots = argv[++i];
  else if (a === '--amqp') opt.amqp = argv[++i];
  else if (a === '--timeout') opt.timeout = Number(argv[++i]);
  else if (a === '--headed') opt.headed = true;
  else if (a === '--full') opt.full = true;
  else if (a === '-h' || a === '--help') usage();
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else positional.push(a);
}
if (positional.length !== 1 && positional.length !== 3) usage('need BASE_URL, optionally USER and PASS');
if (opt.screenshots === undefined) usage('--screenshots needs a directory');
if (!(opt.timeout > 0)) usage('bad --timeout');
const base = positional[0].replace(/\/*$/, '/');
const [user, pass] = positional.length === 3 ? positional.slice(1) : ['guest', 'guest'];
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

const id = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const queue = `ui test/${id} <b>&amp;</b>`; // space, slash and markup on purpose
const payload = `hello from the ringmq UI test ${id} <i>not markup</i>`;
const authHeader = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
const apiUrl = (p) => new URL('api' + p, base).toString();

let passed = 0;
let step = 'start';
const jsErrors = [];
const deadline = Date.now() + opt.timeout * 1000;
const killer = setTimeout(() => {
  console.error(`FAIL: overall timeout of ${opt.timeout}s reached during step "${step}"`);
  process.exit(1);
}, opt.timeout * 1000 + 15000);
killer.unref();

function ok(msg) {
  passed++;
  console.log(`ok ${passed} - ${msg}`);
}
function remaining(max = 30000) {
  return Math.max(1000, Math.min(max, deadline - Date.now()));
}
// Poll fn() until it returns a truthy value; `onMiss` (e.g. click Refresh) runs between tries.
async function until(what, fn, { timeout = 30000, every = 500, onMiss } = {}) {
  const end = Date.now() + remaining(timeout);
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${typeof last === 'string' ? ` (${last})` : ''}`);
    if (onMiss) await onMiss().catch(() => {});
    await new Promise((r) => setTimeout(r, every));
  }
}
async function apiStatus(method, p) {
  const r = await fetch(apiUrl(p), { method, headers: { authorization: authHeader } });
  await r.arrayBuffer();
  return r.status;
}
const qpath = `/queues/${encodeURIComponent('/')}/${encodeURIComponent(queue)}`;

let browser;
let page;
let consumer = null;
async function main() {
  step = 'launch chromium';
  if (!fs.existsSync(chromiumPath)) throw new Error(`${chromiumPath} not found: apt-get install -y chromium (or set CHROMIUM)`);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: !opt.headed, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (e) => jsErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) jsErrors.push(m.text());
  });
  page.on('dialog', (d) => d.accept());

  step = 'open the UI';
  const resp = await page.goto(base, { timeout: remaining(20000) });
  if (!resp || !resp.ok()) throw new Error(`GET ${base} answered ${resp ? resp.status() : 'nothing'}`);
  await page.locator('form#login').waitFor();
  ok('login form shown');

  step = 'reject a wrong password';
  await page.fill('#login [name=username]', user);
  await page.fill('#login [name=password]', pass + '-wrong');
  await page.click('#login button[type=submit]');
  await page.locator('#login .inline-error:not([hidden])').waitFor();
  if (!(await page.locator('#top').isHidden())) throw new Error('header shown after a failed login');

  step = 'log in';
  await page.fill('#login [name=password]', pass);
  await page.click('#login button[type=submit]');
  const header = page.locator('#top:not([hidden])');
  const loginErr = page.locator('#login .inline-error:not([hidden])'); // hidden again on submit
  await until('the header or a login error', async () => {
    if (await header.count()) return true;
    const t = (await loginErr.count()) ? (await loginErr.first().textContent({ timeout: 1000 })).trim() : '';
    if (t && !(await header.count())) throw new Error(`login as ${user} refused: ${t}`);
    return false;
  }, { timeout: 15000, every: 200 }).catch((e) => {
    throw new Error(e.message.replace(/^timed out waiting for the header or a login error \((.*)\)$/, '$1'));
  });
  await page.locator('main h1', { hasText: 'Overview' }).waitFor();
  await page.locator('.tiles .tile').first().waitFor();
  ok(`logged in as ${user}, overview shown`);

  step = 'declare a queue with the form';
  await page.click('#nav a[data-route=queues]');
  const form = page.locator('form#add-queue');
  await form.waitFor();
  await form.locator('[name=vhost]').selectOption('/');
  await form.locator('[name=name]').fill(queue);
  await form.locator('[name=durable]').selectOption('false');
  await form.locator('button[type=submit]').click();
  await page.locator('.toast', { hasText: 'declared' }).waitFor();
  const filter = page.locator('#list-queues input[name=filter]');
  await filter.fill(id);
  const row = page.locator('#list-queues tbody tr', { has: page.getByRole('link', { name: queue, exact: true }) });
  await row.waitFor();
  if (await page.locator('#list-queues tbody b').count()) throw new Error('queue name markup was rendered as HTML');
  ok('queue declared and listed (name escaped)');

  step = 'publish through the default exchange form';
  await page.click('#nav a[data-route=exchanges]');
  await page.locator('#list-exchanges').waitFor();
  await page.getByRole('link', { name: '(AMQP default)', exact: true }).first().click();
  const pub = page.locator('form#publish');
  await pub.waitFor();
  await pub.locator('[name=routing_key]').fill(queue);
  await pub.locator('[name=payload]').fill(payload);
  await pub.locator('button[type=submit]').click();
  const result = pub.locator('.result');
  await until('the publish result', async () => (await result.textContent()) || false, { timeout: 15000, every: 200 });
  const resText = (await result.textContent()).trim();
  if (!/published and routed/.test(resText)) throw new Error(`publish result: "${resText}"`);
  ok('message published and routed');

  step = 'see the message counted in the queue list';
  await page.click('#nav a[data-route=queues]');
  await page.locator('#list-queues').waitFor();
  await page.locator('#list-queues input[name=filter]').fill(id);
  const total = row.locator('td.col-messages');
  let seen;
  await until('the queue list to show 1 message', async () => {
    seen = (await total.textContent({ timeout: 2000 })).trim();
    return seen === '1';
  }, {
    timeout: 30000,
    every: 700,
    onMiss: () => page.locator('#list-queues button[name=refresh]').click(),
  }).catch((e) => {
    throw new Error(`${e.message}; last count shown: "${seen}"`);
  });
  ok('queue list shows 1 message');

  step = 'get the message on the queue page';
  await row.getByRole('link', { name: queue, exact: true }).click();
  await page.locator('form#get-messages').waitFor();
  const title = (await page.locator('main .page-title .obj-name').first().textContent()).trim();
  if (title !== queue) throw new Error(`queue page title is "${title}", expected "${queue}"`);
  await until('the queue page to count 1 message', async () => (await page.locator('#queue-counts [data-field=messages]').textContent({ timeout: 2000 })).trim() === '1', { timeout: 20000 });
  await page.locator('form#get-messages button[type=submit]').click();
  const shown = page.locator('#messages pre.payload').first();
  await shown.waitFor();
  const got = await shown.textContent();
  if (got !== payload) throw new Error(`payload shown is ${JSON.stringify(got)}, expected ${JSON.stringify(payload)}`);
  if (await page.locator('#messages i').count()) throw new Error('payload markup was rendered as HTML');
  ok('message got, payload shown');

  if (opt.full) await fullSuite();
  if (opt.screenshots) await screenshots();

  step = 'delete the queue';
  await page.goto(base + '#/' + `queues/${encodeURIComponent('/')}/${encodeURIComponent(queue)}`);
  await page.locator('main button[name=delete]').click();
  await page.waitForURL((u) => u.hash === '#/queues', { timeout: remaining(15000) });
  await page.locator('#list-queues input[name=filter]').fill(id);
  await page.locator('#list-queues tbody tr.empty').waitFor();
  if (await row.count()) throw new Error('queue still listed after delete');
  const st = await apiStatus('GET', qpath);
  if (st !== 404) throw new Error(`GET /api${qpath} answered ${st} after delete, expected 404`);
  ok('queue deleted, gone from the list and the API');

  step = 'log out';
  await page.click('#logout');
  await page.locator('form#login').waitFor();
  const stored = await page.evaluate(() => sessionStorage.getItem('ringmq.auth'));
  if (stored) throw new Error('credentials still in sessionStorage after log out');
  ok('logged out');

  if (jsErrors.length) throw new Error(`JavaScript errors in the page:\n  ${jsErrors.join('\n  ')}`);
}

async function go(hash) {
  await page.goto(base + '#/' + hash);
}
function rowByName(scope, name) {
  return page.locator(`${scope} tbody tr[data-name]`).filter({ has: page.locator('td.col-name', { hasText: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }) });
}
async function queueCount() {
  await go(`queues/${encodeURIComponent('/')}/${encodeURIComponent(queue)}`);
  const cell = page.locator('#queue-counts [data-field=messages]');
  await cell.waitFor();
  return async () => (await cell.textContent()).trim();
}

async function fullSuite() {
  // ---- list paging, sorting, regex filter, vhost picker (25 queues made with the API)
  step = 'make 25 queues with the API';
  const pre = `ui-page-${id}-`;
  const names = Array.from({ length: 25 }, (_, i) => pre + String(i).padStart(2, '0'));
  try {
    for (const n of names) {
      const r = await fetch(apiUrl(`/queues/%2F/${encodeURIComponent(n)}`), {
        method: 'PUT', headers: { authorization: authHeader, 'content-type': 'application/json' }, body: '{"durable":false}',
      });
      if (r.status >= 300) throw new Error(`PUT queue ${n}: ${r.status} ${await r.text()}`);
    }
    step = 'page through the queue list';
    await page.click('#nav a[data-route=queues]');
    const list = page.locator('#list-queues');
    await list.locator('select[name=page_size]').selectOption('20');
    await list.locator('input[name=regex]').setChecked(false);
    await list.locator('input[name=filter]').fill(pre);
    const rows = list.locator('tbody tr[data-name]');
    const firstName = async () => rows.first().getAttribute('data-name');
    await until('20 rows on page 1', async () => (await rows.count()) === 20 && (await firstName()) === names[0], { timeout: 15000 });
    const info = async () => (await list.locator('.pager').textContent()) + ' ' + (await list.locator('.count').textContent());
    if (!/Page 1 of 2/.test(await info()) || !/\(25 of \d+\)/.test(await info())) throw new Error(`pager/count shows "${await info()}"`);
    await list.getByRole('button', { name: 'Next ›' }).click();
    await until('5 rows on page 2', async () => (await rows.count()) === 5 && (await firstName()) === names[20], { timeout: 15000 });
    ok('queue list pages (20 per page: 20 + 5 of 25)');
    step = 'sort the queue list';
    await list.getByRole('button', { name: 'Prev' }).click();
    await until('page 1 again', async () => (await firstName()) === names[0], { timeout: 15000 });
    await list.locator('th button', { hasText: 'Name' }).click(); // name is the current sort: reverse it
    await until('reverse name order', async () => (await firstName()) === names[24], { timeout: 15000 });
    await list.locator('th button', { hasText: 'Name' }).click();
    await until('name order again', async () => (await firstName()) === names[0], { timeout: 15000 });
    ok('queue list sorts by name both ways');
    step = 'filter the queue list with a regex';
    await list.locator('input[name=regex]').setChecked(true);
    await list.locator('input[name=filter]').fill(`^${pre}1[0-4]$`);
    await until('5 regex matches', async () => (await rows.count()) === 5 && (await firstName()) === names[10], { timeout: 15000 });
    await list.locator('input[name=regex]').setChecked(false);
    ok('regex filter');
    step = 'pick a vhost in the header';
    await page.locator('#vhost-select').selectOption('/');
    await list.locator('input[name=filter]').fill(pre);
    await until('the list of vhost / without a vhost column', async () =>
      (await rows.count()) === 20 && (await list.locator('thead th', { hasText: 'Virtual host' }).count()) === 0, { timeout: 15000 });
    await page.locator('#vhost-select').selectOption('');
    await until('the vhost column back', async () => (await list.locator('thead th', { hasText: 'Virtual host' }).count()) === 1, { timeout: 15000 });
    await list.locator('select[name=page_size]').selectOption('50');
    await list.locator('input[name=filter]').fill('');
    ok('vhost picker filters the lists');
  } finally {
    for (const n of names) await apiStatus('DELETE', `/queues/%2F/${encodeURIComponent(n)}`).catch(() => {});
  }

  // ---- vhosts
  step = 'add a vhost with the form';
  const vh = `ui-vh-${id}`;
  await page.click('#nav a[data-route=vhosts]');
  const vf = page.locator('form#add-vhost');
  await vf.locator('[name=name]').fill(vh);
  await vf.locator('[name=description]').fill('made by the UI test');
  await vf.locator('button[type=submit]').click();
  await rowByName('main', vh).waitFor();
  if (!(await page.locator('#vhost-select option', { hasText: vh }).count())) throw new Error('new vhost missing from the vhost picker');
  ok('vhost added');

  // ---- users and permissions
  step = 'add a user with the form';
  const un = `ui-user-${id}`;
  await page.click('#nav a[data-route=users]');
  const uf = page.locator('form#add-user');
  await uf.locator('[name=username]').fill(un);
  await uf.locator('[name=password]').fill('pw-' + id);
  await uf.locator('button.tagpick', { hasText: 'monitoring' }).click();
  await uf.locator('button[type=submit]').click();
  const urow = rowByName('main', un);
  await urow.waitFor();
  if (!(await urow.locator('.badge', { hasText: 'monitoring' }).count())) throw new Error('user row lacks the monitoring tag');
  step = 'set permissions with the form';
  const pf = page.locator('form#set-permissions');
  await until('the new user in the permissions form', async () => (await pf.locator(`[name=user] option[value="${un}"]`).count()) > 0, { timeout: 10000 });
  await pf.locator('[name=user]').selectOption(un);
  await pf.locator('[name=vhost]').selectOption(vh);
  await pf.locator('[name=configure]').fill('^ui-');
  await pf.locator('button[type=submit]').click();
  const perm = page.locator('main tbody tr', { hasText: un }).filter({ hasText: vh }).filter({ has: page.locator('button', { hasText: 'Clear' }) });
  await perm.waitFor();
  if (!(await perm.locator('code', { hasText: '^ui-' }).count())) throw new Error('permission row does not show the configure regex');
  await until('the user row to list the vhost', async () => (await urow.textContent()).includes(vh), { timeout: 10000 });
  step = 'clear permissions';
  await perm.getByRole('button', { name: 'Clear' }).click();
  await until('the permission row to disappear', async () => (await perm.count()) === 0, { timeout: 10000 });
  step = 'delete the user';
  await urow.getByRole('button', { name: 'Delete' }).click();
  await until('the user row to disappear', async () => (await urow.count()) === 0, { timeout: 10000 });
  ok('user added with tags, permissions set and cleared, user deleted');

  step = 'delete the vhost';
  await page.click('#nav a[data-route=vhosts]');
  const vrow = rowByName('main', vh);
  await vrow.getByRole('button', { name: 'Delete' }).click();
  await until('the vhost row to disappear', async () => (await vrow.count()) === 0, { timeout: 10000 });
  ok('vhost deleted');

  // ---- exchange, binding, publish routed / not routed
  step = 'add an exchange with the form';
  const xn = `ui-x-${id}`;
  await page.click('#nav a[data-route=exchanges]');
  const xf = page.locator('form#add-exchange');
  await xf.locator('[name=vhost]').selectOption('/');
  await xf.locator('[name=name]').fill(xn);
  await xf.locator('[name=type]').selectOption('fanout');
  await xf.locator('[name=durable]').selectOption('false');
  await xf.locator('button[type=submit]').click();
  await page.locator('#list-exchanges input[name=filter]').fill(xn);
  await page.getByRole('link', { name: xn, exact: true }).click();
  step = 'bind the exchange to the queue';
  const bf = page.locator('form#add-exchange-binding');
  await bf.waitFor();
  await bf.locator('[name=dtype]').selectOption('q');
  await bf.locator('[name=destination]').fill(queue);
  await bf.locator('[name=routing_key]').fill('rk/1 x');
  await bf.locator('button[type=submit]').click();
  const brow = page.locator('main tbody tr', { has: page.getByRole('link', { name: queue, exact: true }) });
  await brow.waitFor();
  ok('exchange added and bound to the queue');
  step = 'publish through the exchange';
  const pub = page.locator('form#publish');
  await pub.locator('[name=payload]').fill('second ' + id);
  await pub.locator('[name=headers]').fill('{"x-ui": "yes"}');
  await pub.locator('button[type=submit]').click();
  await until('a routed result', async () => /published and routed/.test(await pub.locator('.result').textContent()), { timeout: 10000, every: 200 });
  step = 'the queue page shows the binding and counts 2 messages';
  const count = await queueCount();
  await page.locator('main tbody tr', { hasText: xn }).filter({ hasText: 'rk/1 x' }).waitFor();
  let seen;
  await until('2 messages on the queue page', async () => (seen = await count()) === '2', { timeout: 30000, every: 700 }).catch((e) => {
    throw new Error(`${e.message}; shown: ${seen}`);
  });
  ok('message routed through the binding');
  step = 'unbind on the queue page';
  const qb = page.locator('main tbody tr', { hasText: xn });
  await qb.getByRole('button', { name: 'Unbind' }).click();
  await until('the binding to disappear', async () => (await qb.count()) === 0, { timeout: 10000 });
  step = 'publish again: not routed';
  await go(`exchanges/${encodeURIComponent('/')}/${encodeURIComponent(xn)}`);
  await pub.locator('[name=payload]').fill('third ' + id);
  await pub.locator('button[type=submit]').click();
  await until('a "not routed" result', async () => /not routed/.test(await pub.locator('.result').textContent()), { timeout: 10000, every: 200 });
  ok('unbound; publish reports not routed');
  step = 'delete the exchange';
  await page.locator('main button[name=delete]').click();
  await page.waitForURL((u) => u.hash === '#/exchanges', { timeout: remaining(15000) });
  const xs = await apiStatus('GET', `/exchanges/%2F/${encodeURIComponent(xn)}`);
  if (xs !== 404) throw new Error(`exchange still there after delete (GET answered ${xs})`);
  ok('exchange deleted');

  // ---- purge
  step = 'purge the queue';
  const c2 = await queueCount();
  await page.locator('main button[name=purge]').click();
  await until('0 messages after purge', async () => (seen = await c2()) === '0', {
    timeout: 30000, every: 700, onMiss: async () => { await page.reload(); await page.locator('#queue-counts').waitFor(); },
  }).catch((e) => {
    throw new Error(`${e.message}; shown: ${seen}`);
  });
  ok('queue purged');

  // ---- definitions
  step = 'export definitions';
  await page.click('#nav a[data-route=definitions]');
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: remaining(15000) }),
    page.locator('form#export-definitions button[type=submit]').click(),
  ]);
  const file = await download.path();
  const defs = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!Array.isArray(defs.queues) || !defs.queues.some((q) => q.name === queue)) throw new Error('exported definitions do not list the test queue');
  ok(`definitions exported (${download.suggestedFilename()})`);
  step = 'import definitions';
  const imported = `ui-imported-${id}`;
  const body = { queues: [{ name: imported, vhost: '/', durable: false, auto_delete: false, arguments: {} }] };
  await page.locator('form#import-definitions input[type=file]').setInputFiles({ name: 'defs.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(body)) });
  await page.locator('form#import-definitions button[type=submit]').click();
  await page.locator('.toast', { hasText: 'imported' }).waitFor();
  const is = await apiStatus('GET', `/queues/%2F/${imported}`);
  await apiStatus('DELETE', `/queues/%2F/${imported}`);
  if (is !== 200) throw new Error(`imported queue not found (GET answered ${is})`);
  ok('definitions imported');

  // ---- close a connection
  if (opt.amqp) {
    step = 'close a connection with a reason';
    const c = await openConsumer(opt.amqp, `ui-close-${id}`, { connectionName: `ui-close-${id}` });
    try {
      await go('connections');
      await until('the connection to be listed', async () => (await page.locator('#list-connections tbody tr[data-name]').count()) > 0, {
        timeout: 20000, every: 1000, onMiss: () => page.locator('#list-connections button[name=refresh]').click(),
      });
      // ours is the one whose client properties carry our connection_name
      const names = await page.locator('#list-connections tbody tr[data-name]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')));
      let target = null;
      for (const n of names) {
        const r = await fetch(apiUrl(`/connections/${encodeURIComponent(n)}`), { headers: { authorization: authHeader } });
        const j = r.ok ? await r.json() : {};
        if (j.client_properties && j.client_properties.connection_name === `ui-close-${id}`) target = n;
      }
      if (!target) throw new Error('test connection not found in the connections list');
      await go(`connections/${encodeURIComponent(target)}`);
      const cf = page.locator('form#close-connection');
      await cf.locator('[name=reason]').fill(`closed by UI test ${id}`);
      await cf.locator('button[type=submit]').click();
      await page.waitForURL((u) => u.hash === '#/connections', { timeout: remaining(15000) });
      const why = await Promise.race([c.closed, new Promise((r) => setTimeout(() => r('(still open after 10 s)'), 10000))]);
      if (!why.includes(`closed by UI test ${id}`)) throw new Error(`connection end: ${why}`);
      ok('connection closed with the reason');
    } finally {
      await c.close().catch(() => {});
    }
  }
}

async function shot(name, ready) {
  step = `screenshot ${name}`;
  if (ready) await ready();
  await page.evaluate(() => {
    for (const t of document.querySelectorAll('.toast')) t.remove();
    document.activeElement?.blur();
    window.scrollTo(0, 0);
  });
  await page.waitForTimeout(300); // let the last repaint land
  const file = path.join(opt.screenshots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`   saved ${file}`);
}

async function apiJson(method, p, body) {
  const r = await fetch(apiUrl(p), {
    method,
    headers: { authorization: authHeader, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 400) throw new Error(`${method} /api${p}: ${r.status} ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) : null;
}
// A few realistic objects for the screenshots; removed after (only what was made here).
const demo = { queues: [], exchanges: [], users: [] };
const DEMO_QUEUES = ['orders.created', 'orders.shipped', 'billing.invoices', 'audit.log'];
let demoSeq = 1000;
async function demoPublish(routingKey, exchange = 'events') {
  demoSeq++;
  const payload = JSON.stringify({ order: demoSeq, customer: `c-${(demoSeq * 7919) % 1000}`, total: ((demoSeq * 37) % 500) + 0.99, currency: 'EUR' });
  await apiJson('POST', `/exchanges/%2F/${exchange === '' ? 'amq.default' : exchange}/publish`, {
    properties: { content_type: 'application/json', delivery_mode: 2, message_id: `m-${demoSeq}` }, routing_key: routingKey, payload, payload_encoding: 'string',
  });
}
async function makeDemo() {
  step = 'make demo objects for the screenshots';
  for (const q of DEMO_QUEUES) {
    if ((await apiStatus('GET', `/queues/%2F/${q}`)) === 404) {
      await apiJson('PUT', `/queues/%2F/${q}`, { durable: true, auto_delete: false, arguments: q === 'audit.log' ? { 'x-max-length': 100000 } : {} });
      demo.queues.push(q);
    }
  }
  if ((await apiStatus('GET', '/exchanges/%2F/events')) === 404) {
    await apiJson('PUT', '/exchanges/%2F/events', { type: 'topic', durable: true, auto_delete: false, internal: false, arguments: {} });
    demo.exchanges.push('events');
  }
  for (const [q, rk] of [['orders.created', 'orders.created'], ['orders.shipped', 'orders.shipped'], ['audit.log', '#']]) {
    await apiJson('POST', `/bindings/%2F/e/events/q/${q}`, { routing_key: rk, arguments: {} });
  }
  for (const [u, tags, perm] of [['app-orders', '', ['^orders\\.', '^(events|orders\\..*)$', '^orders\\.']], ['grafana', 'monitoring', null], ['ops', 'administrator', ['.*', '.*', '.*']]]) {
    if ((await apiStatus('GET', `/users/${u}`)) !== 404) continue;
    await apiJson('PUT', `/users/${u}`, { password: `demo-${id}`, tags });
    demo.users.push(u);
    if (perm) await apiJson('PUT', `/permissions/%2F/${u}`, { configure: perm[0], write: perm[1], read: perm[2] });
  }
  for (let i = 0; i < 7; i++) await demoPublish('orders.created');
  for (let i = 0; i < 3; i++) await demoPublish('orders.shipped');
  for (let i = 0; i < 12; i++) await demoPublish('billing.invoices', '');
}
async function dropDemo() {
  for (const q of demo.queues.splice(0)) await apiStatus('DELETE', `/queues/%2F/${q}`).catch(() => {});
  for (const x of demo.exchanges.splice(0)) await apiStatus('DELETE', `/exchanges/%2F/${x}`).catch(() => {});
  for (const u of demo.users.splice(0)) await apiStatus('DELETE', `/users/${u}`).catch(() => {});
}

async function screenshots() {
  fs.mkdirSync(opt.screenshots, { recursive: true });
  await makeDemo();
  if (opt.amqp) {
    step = 'open an AMQP consumer';
    consumer = await openConsumer(opt.amqp, `notifications-${id.slice(-4)}`, { prefetch: 10 });
  }
  step = 'queue detail of a demo queue';
  await go(`queues/${encodeURIComponent('/')}/orders.created`);
  await until('7 messages in orders.created', async () => (await page.locator('#queue-counts [data-field=messages]').textContent()).trim() === '7', {
    timeout: 20000, every: 1000, onMiss: () => page.reload(),
  });
  await page.locator('form#get-messages [name=count]').fill('2');
  await page.locator('form#get-messages button[type=submit]').click();
  await page.locator('#messages .message').nth(1).waitFor();
  await shot('queue-detail');
  // a policy through the form, for the policies page (removed again below)
  const pname = `ui-demo-${id}`;
  step = 'add a policy with the form';
  await page.goto(base + '#/policies');
  const pf = page.locator('form#add-policy');
  await pf.waitFor();
  await pf.locator('[name=vhost]').selectOption('/');
  await pf.locator('[name=name]').fill(pname);
  await pf.locator('[name=pattern]').fill('^ui-demo\\.');
  await pf.locator('[name=apply-to]').selectOption('queues');
  await pf.locator('[name=definition]').fill('{"max-length": 10000, "message-ttl": 3600000}');
  await pf.locator('button[type=submit]').click();
  const prow = page.locator('main tbody tr[data-name]', { hasText: pname });
  await prow.waitFor();
  ok('policy added with the form');
  await shot('policies');
  step = 'delete the policy';
  await prow.getByRole('button', { name: 'Delete' }).click();
  await until('the policy to disappear', async () => (await prow.count()) === 0, { timeout: 10000 });
  ok('policy deleted');

  await page.goto(base + '#/queues');
  await page.locator('#list-queues input[name=filter]').fill('');
  await shot('queues', () => page.locator('#list-queues tbody tr').first().waitFor());
  await page.goto(base + '#/exchanges');
  await shot('exchanges', () => page.locator('#list-exchanges tbody tr[data-name]').first().waitFor());
  // with --amqp, wait (refreshing) for the connection to be listed: RabbitMQ
  // emits connection stats every 5 s
  const listed = (key) => async () => {
    if (!consumer) return;
    await until(`a row in the ${key} list`, async () => (await page.locator(`#list-${key} tbody tr[data-name]`).count()) > 0, {
      timeout: 20000, every: 1000, onMiss: () => page.locator(`#list-${key} button[name=refresh]`).click(),
    });
  };
  await page.goto(base + '#/connections');
  await shot('connections', listed('connections'));
  await page.goto(base + '#/channels');
  await shot('channels', listed('channels'));
  await page.goto(base + '#/users');
  await shot('users', () => page.locator('main tbody tr[data-name]').first().waitFor());
  await page.goto(base + '#/');
  // three polls with some traffic, so the charts have lines
  await shot('overview', async () => {
    const end = Date.now() + 15500;
    while (Date.now() < end) {
      await demoPublish(Math.random() < 0.7 ? 'orders.created' : 'orders.shipped');
      if (Math.random() < 0.5) await apiJson('POST', '/queues/%2F/orders.created/get', { count: 1, ackmode: 'ack_requeue_false', encoding: 'auto', truncate: 1000 });
      await new Promise((r) => setTimeout(r, 250));
    }
  });
  await dropDemo();
  if (consumer) {
    await consumer.close();
    consumer = null;
  }
}

async function cleanup() {
  await dropDemo().catch(() => {});
  try {
    if (consumer) await consumer.close();
  } catch {}
  try {
    await apiStatus('DELETE', qpath);
  } catch {}
  try {
    if (browser) await browser.close();
  } catch {}
}

try {
  await main();
  await cleanup();
  console.log(`ui: ${passed} passed, 0 failed`);
  process.exit(0);
} catch (e) {
  console.error(`FAIL at step "${step}": ${e.message.split('\n').slice(0, 6).join('\n')}`);
  if (jsErrors.length) console.error(`JavaScript errors in the page:\n  ${jsErrors.join('\n  ')}`);
  if (page) {
    const f = path.join(process.env.TMPDIR || '/tmp', `ringmq-ui-failure-${id}.png`);
    try {
      await page.screenshot({ path: f, fullPage: true });
      console.error(`page at failure: ${f} (URL ${page.url()})`);
    } catch {}
  }
  await cleanup();
  console.log(`ui: ${passed} passed, 1 failed`);
  process.exit(1);
}
