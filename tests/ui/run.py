#!/usr/bin/env python3
"""Browser test of the management web UI in headless Chromium.

    python3 tests/ui/run.py BASE_URL [USER PASS] [--screenshots DIR] [--amqp URL]
                            [--alarm-url URL] [--timeout SECONDS] [--full] [--headed]

(tests/ui/ci.sh installs what it needs and runs it.) Drives Debian's chromium
through Debian's chromium-driver (/usr/bin/chromedriver) with selenium; the
driver path is given explicitly and SE_OFFLINE is set, so selenium-manager
never downloads anything. CHROMIUM and CHROMEDRIVER override the paths.

BASE_URL serves the UI at / and the management API at /api (the broker's
HTTP port, or tests/ui/devserver.py in front of another broker).
Flow: log in, declare a queue with the add-queue form, publish a message to it
through the default exchange's publish form, wait for the queue list to count
it, get it on the queue page and check the payload, delete the queue and check
it is gone (in the UI and with the API). The queue name holds a space, a slash
and HTML markup, so URL encoding and escaping are checked on the way.
--full also drives the other pages and forms: vhosts, users and permissions,
vhost and user limits, topic permissions, operator policies (seen on the
queue), queue pause and resume, a shovel (added, running, moving a message,
restarted, deleted), federation (an upstream added with the form, its link
running and moving a message, restarted, gone with the upstream), the nodes page and the overview's node
status, an exchange with a binding to the queue and its publish form (routed /
not routed), purge, list paging / sorting / regex filter / vhost picker,
definitions export and import, and (with --amqp) the consumers page and
closing a connection with a reason.
--alarm-url URL: a second broker (same user and password) under a resource
alarm, e.g. ringmq started with --memory-high-watermark 1MiB: its overview,
header and nodes page must show each alarm its /api/nodes reports.
--screenshots DIR also saves PNGs of the main pages. --amqp URL (for example
amqp://guest:guest@127.0.0.1:5672/) keeps an AMQP connection with a consumer
open while the screenshots are taken, so connections and channels show rows.
The last line is `ui: N passed, N failed`; exits 1 with the failing step on
failure, 2 on bad arguments.

The small locator layer below (Loc) keeps the semantics the test was written
with: locators are re-resolved on every use, waits are for visible elements,
actions on one element fail when the locator matches several (strict), text
matches are case-insensitive substrings with whitespace normalised, and role
lookups match links / buttons by their accessible name.
"""

import base64
import json
import os
import random
import re
import shutil
import string
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

os.environ.setdefault('SE_OFFLINE', 'true')  # selenium-manager: never download a driver or browser

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    ElementClickInterceptedException,
    ElementNotInteractableException,
    InvalidElementStateException,
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    UnexpectedAlertPresentException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amqp_mini import open_consumer  # noqa: E402

DEFAULT_TIMEOUT = 15.0  # seconds, for one locator wait or action


def usage(msg=None):
    if msg:
        print(f'run.py: {msg}', file=sys.stderr)
    print('usage: python3 tests/ui/run.py BASE_URL [USER PASS] [--screenshots DIR] [--amqp URL] '
          '[--alarm-url URL] [--timeout SECONDS] [--full] [--headed]', file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    opt = {'screenshots': None, 'amqp': None, 'alarm_url': None, 'timeout': 120.0, 'headed': False, 'full': False}
    positional = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ('--screenshots', '--amqp', '--alarm-url', '--timeout'):
            i += 1
            if i >= len(argv):
                usage(f'{a} needs a value')
            v = argv[i]
            if a == '--timeout':
                try:
                    opt['timeout'] = float(v)
                except ValueError:
                    usage('bad --timeout')
            else:
                opt[a[2:].replace('-', '_')] = v
        elif a == '--headed':
            opt['headed'] = True
        elif a == '--full':
            opt['full'] = True
        elif a in ('-h', '--help'):
            usage()
        elif a.startswith('--'):
            usage(f'unknown option {a}')
        else:
            positional.append(a)
        i += 1
    if len(positional) not in (1, 3):
        usage('need BASE_URL, optionally USER and PASS')
    if not opt['timeout'] > 0:
        usage('bad --timeout')
    return positional, opt


positional, opt = parse_args(sys.argv[1:])
base = positional[0].rstrip('/') + '/'
user, password = positional[1:3] if len(positional) == 3 else ('guest', 'guest')
chromium_path = os.environ.get('CHROMIUM') or '/usr/bin/chromium'
driver_path = os.environ.get('CHROMEDRIVER') or '/usr/bin/chromedriver'


def base36(n):
    digits = string.digits + string.ascii_lowercase
    out = ''
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def enc(s):
    """encodeURIComponent"""
    return urllib.parse.quote(s, safe="-_.!~*'()")


ID = base36(int(time.time() * 1000)) + ''.join(random.choice(string.digits + string.ascii_lowercase) for _ in range(4))
QUEUE = f'ui test/{ID} <b>&amp;</b>'  # space, slash and markup on purpose
PAYLOAD = f'hello from the ringmq UI test {ID} <i>not markup</i>'
AUTH = 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()
QPATH = f'/queues/{enc("/")}/{enc(QUEUE)}'


def api_url(p, root=None):
    return (root or base) + 'api' + p


class Fail(Exception):
    pass


state = {'passed': 0, 'step': 'start'}
js_errors = []
deadline = time.monotonic() + opt['timeout']
_print_lock = threading.Lock()


def say(msg, err=False):
    with _print_lock:
        print(msg, file=sys.stderr if err else sys.stdout, flush=True)


def ok(msg):
    state['passed'] += 1
    say(f"ok {state['passed']} - {msg}")


def set_step(s):
    state['step'] = s


def remaining(cap=30.0):
    return max(1.0, min(cap, deadline - time.monotonic()))


def errmsg(e):
    if isinstance(e, WebDriverException):
        return (e.msg or type(e).__name__).strip().split('\n')[0]
    return str(e) or type(e).__name__


def until(what, fn, timeout=30.0, every=0.5, on_miss=None):
    """Poll fn() until it returns a truthy value; on_miss (e.g. click Refresh) runs between tries."""
    end = time.monotonic() + remaining(timeout)
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - any miss is retried until the deadline
            last = errmsg(e)
        if time.monotonic() > end:
            raise Fail(f'timed out waiting for {what}' + (f' ({last})' if isinstance(last, str) and last else ''))
        if on_miss:
            try:
                on_miss()
            except Exception:  # noqa: BLE001
                pass
        time.sleep(every)


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def api_request(method, p, body=None, root=None):
    headers = {'authorization': AUTH}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers['content-type'] = 'application/json'
    req = urllib.request.Request(api_url(p, root), data=data, method=method, headers=headers)
    try:
        with _opener.open(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def api_status(method, p):
    return api_request(method, p)[0]


def api_json(method, p, body=None, root=None):
    st, text = api_request(method, p, body, root)
    if st >= 400:
        raise Fail(f'{method} /api{p}: {st} {text[:200].decode("utf-8", "replace")}')
    return json.loads(text) if text else None


# ------------------------------------------------------------------ locators

RESOLVE_JS = r"""
const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
function visible(el) {
  if (!el.isConnected) return false;
  if (el.checkVisibility && !el.checkVisibility({ visibilityProperty: true })) return false;
  const st = getComputedStyle(el);
  if (st.visibility !== 'visible') return false;
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0;
}
function hiddenForAria(el) {
  if (el.checkVisibility && !el.checkVisibility({ visibilityProperty: true })) return true;
  return !!el.closest('[aria-hidden=true]');
}
function accName(el) {
  const l = el.getAttribute('aria-label');
  if (l && l.trim()) return norm(l);
  const by = el.getAttribute('aria-labelledby');
  if (by) {
    const t = by.split(/\s+/).map((id) => document.getElementById(id)).filter(Boolean).map((e) => e.textContent).join(' ');
    if (norm(t)) return norm(t);
  }
  if (el.tagName === 'INPUT') return norm(el.value || el.getAttribute('title') || '');
  const t = norm(el.textContent);
  return t || norm(el.getAttribute('title'));
}
const ROLES = {
  link: 'a[href], area[href], [role=link]',
  button: 'button, input[type=button], input[type=submit], input[type=reset], input[type=image], [role=button]',
};
function order(list) {
  const uniq = [...new Set(list)];
  return uniq.sort((a, b) => (a === b ? 0 : a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
}
function resolve(steps, roots) {
  let cur = roots;
  for (const s of steps) {
    const kind = s[0];
    if (kind === 'css') {
      const out = [];
      for (const r of cur) out.push(...r.querySelectorAll(s[1]));
      cur = roots.length === 1 && cur.length === 1 ? out : order(out);
    } else if (kind === 'role') {
      const [, role, name, exact] = s;
      const out = [];
      for (const r of cur) out.push(...r.querySelectorAll(ROLES[role]));
      cur = order(out).filter((e) => {
        if (e.getAttribute('role') && e.getAttribute('role') !== role) return false;
        if (hiddenForAria(e)) return false;
        const n = accName(e);
        return exact ? n === name : n.toLowerCase().includes(name.toLowerCase());
      });
    } else if (kind === 'text') {
      cur = cur.filter((e) => norm(e.textContent).toLowerCase().includes(norm(s[1]).toLowerCase()));
    } else if (kind === 'regex') {
      const re = new RegExp(s[1], s[2]);
      cur = cur.filter((e) => re.test(norm(e.textContent)));
    } else if (kind === 'has') {
      cur = cur.filter((e) => resolve(s[1], [e]).length > 0);
    } else if (kind === 'nth') {
      const i = s[1] < 0 ? cur.length + s[1] : s[1];
      cur = i >= 0 && i < cur.length ? [cur[i]] : [];
    }
  }
  return cur;
}
const found = resolve(arguments[0], [document]);
return found.map((e) => [e, visible(e)]);
"""


class Loc:
    """A lazily resolved element query (re-evaluated in the page on every use)."""

    def __init__(self, ui, steps, desc):
        self.ui = ui
        self.steps = steps
        self.desc = desc

    def _with(self, steps, desc):
        return Loc(self.ui, self.steps + steps, f'{self.desc}{desc}')

    @staticmethod
    def _filters(has_text, has):
        steps, desc = [], ''
        if has_text is not None:
            if isinstance(has_text, re.Pattern):
                flags = 'i' if has_text.flags & re.IGNORECASE else ''
                steps.append(['regex', has_text.pattern, flags])
                desc += f'.filter(has_text=/{has_text.pattern}/{flags})'
            else:
                steps.append(['text', has_text])
                desc += f'.filter(has_text={has_text!r})'
        if has is not None:
            steps.append(['has', has.steps])
            desc += f'.filter(has={has.desc})'
        return steps, desc

    def locator(self, css, has_text=None, has=None):
        steps, desc = self._filters(has_text, has)
        return self._with([['css', css]] + steps, f'.locator({css!r}){desc}')

    def filter(self, has_text=None, has=None):
        steps, desc = self._filters(has_text, has)
        return self._with(steps, desc)

    def get_by_role(self, role, name, exact=False):
        return self._with([['role', role, name, exact]], f'.get_by_role({role!r}, name={name!r}{", exact" if exact else ""})')

    def nth(self, i):
        return self._with([['nth', i]], f'.nth({i})')

    @property
    def first(self):
        return self.nth(0)

    # -- resolution
    def _resolve(self):
        return self.ui.driver.execute_script(RESOLVE_JS, self.steps)

    def count(self):
        return len(self._resolve())

    def all_elements(self):
        return [e for e, _ in self._resolve()]

    def is_hidden(self):
        found = self._resolve()
        if len(found) > 1:
            raise Fail(f'strict mode violation: {self.desc} matched {len(found)} elements')
        return not found or not found[0][1]

    def _one(self, timeout=None, visible=True, enabled=False, editable=False):
        """The one element matched, once attached (and visible / enabled / editable when asked)."""
        end = time.monotonic() + (DEFAULT_TIMEOUT if timeout is None else timeout)
        why = 'to be attached'
        while True:
            try:
                found = self._resolve()
                if len(found) > 1:
                    raise Fail(f'strict mode violation: {self.desc} matched {len(found)} elements')
                if found:
                    el, vis = found[0]
                    if visible and not vis:
                        why = 'to be visible'
                    elif enabled and not el.is_enabled():
                        why = 'to be enabled'
                    elif editable and el.get_property('readOnly'):
                        why = 'to be editable'
                    else:
                        return el
                else:
                    why = 'to be attached' if not visible else 'to be visible'
            except StaleElementReferenceException:
                pass
            if time.monotonic() > end:
                raise Fail(f'timed out after {timeout or DEFAULT_TIMEOUT:g}s waiting for {self.desc} {why}')
            time.sleep(0.1)

    def wait_for(self, timeout=None):
        self._one(timeout=timeout)

    def _act(self, what, fn, timeout=None, **need):
        t = DEFAULT_TIMEOUT if timeout is None else timeout
        end = time.monotonic() + t
        while True:
            el = self._one(timeout=max(0.1, end - time.monotonic()), **need)
            try:
                return fn(el)
            except (ElementClickInterceptedException, ElementNotInteractableException,
                    StaleElementReferenceException, InvalidElementStateException) as e:
                if time.monotonic() > end:
                    raise Fail(f'{what} {self.desc}: {errmsg(e)}') from None
                time.sleep(0.15)

    # -- reading
    def text(self, timeout=None):
        return self._act('textContent of', lambda el: self.ui.driver.execute_script('return arguments[0].textContent;', el),
                         timeout=timeout, visible=False)

    def get_attribute(self, name, timeout=None):
        return self._act('attribute of', lambda el: el.get_attribute(name), timeout=timeout, visible=False)

    def evaluate_all(self, js):
        """Run js with the matched elements as `els`; returns its value."""
        return self.ui.driver.execute_script(f'const els = arguments[0]; {js}', self.all_elements())

    # -- actions
    def click(self, timeout=None):
        self._act('click', lambda el: el.click(), timeout=timeout, enabled=True)
        self.ui.accept_dialog()

    def fill(self, value, timeout=None):
        def do(el):
            # empty it with the keyboard (select all, backspace), so the page gets its
            # input event as from a user (WebDriver's clear() fires only change)
            if el.get_property('value'):
                el.send_keys(Keys.CONTROL, 'a')
                el.send_keys(Keys.BACKSPACE)
                if el.get_property('value'):
                    el.clear()
                    self.ui.driver.execute_script(
                        "arguments[0].dispatchEvent(new Event('input', { bubbles: true }));", el)
            if value:
                el.send_keys(value)
            got = el.get_property('value')
            if got != value:
                raise Fail(f'fill {self.desc}: value is {got!r} after typing {value!r}')
        self._act('fill', do, timeout=timeout, enabled=True, editable=True)

    def select_option(self, value, timeout=None):
        t = DEFAULT_TIMEOUT if timeout is None else timeout
        end = time.monotonic() + t

        def do(el):
            sel = Select(el)
            try:
                sel.select_by_value(value)
            except NoSuchElementException:
                sel.select_by_visible_text(value)
            if el.get_property('value') != value and sel.first_selected_option.text.strip() != value:
                raise Fail(f'select {value!r} in {self.desc}: not selected')

        while True:
            try:
                return self._act('select in', do, timeout=max(0.1, end - time.monotonic()), enabled=True)
            except NoSuchElementException:
                if time.monotonic() > end:
                    raise Fail(f'select {value!r} in {self.desc}: no such option') from None
                time.sleep(0.15)

    def set_checked(self, want, timeout=None):
        def do(el):
            if el.is_selected() != want:
                el.click()
            if el.is_selected() != want:
                raise Fail(f'set_checked({want}) {self.desc}: still {not want}')
        self._act('check', do, timeout=timeout, enabled=True)

    def set_input_files(self, path, timeout=None):
        self._act('set files of', lambda el: el.send_keys(path), timeout=timeout, visible=False)


class UI:
    def __init__(self, driver):
        self.driver = driver

    def locator(self, css, has_text=None, has=None):
        return Loc(self, [], 'page').locator(css, has_text=has_text, has=has)

    def get_by_role(self, role, name, exact=False):
        return Loc(self, [], 'page').get_by_role(role, name, exact=exact)

    def click(self, css):
        self.locator(css).click()

    def goto(self, url):
        self.driver.get(url)

    def reload(self):
        self.driver.refresh()

    def evaluate(self, js, *args):
        return self.driver.execute_script(js, *args)

    def hash(self):
        return self.driver.execute_script('return location.hash;')

    def url(self):
        return self.driver.current_url

    def wait_for_hash(self, h, timeout=15.0):
        until(f'the URL hash to be {h}', lambda: self.hash() == h, timeout=timeout, every=0.1)

    def accept_dialog(self):
        """confirm() dialogs (delete, purge, close) are accepted, as a user would."""
        try:
            self.driver.switch_to.alert.accept()
        except (NoAlertPresentException, UnexpectedAlertPresentException):
            pass
        except WebDriverException:
            pass

    def collect_js_errors(self):
        try:
            entries = self.driver.get_log('browser')
        except WebDriverException:
            return
        for e in entries:
            if e.get('level') != 'SEVERE':
                continue
            msg = e.get('message', '')
            if 'Failed to load resource' in msg:
                continue
            js_errors.append(msg)

    def screenshot(self, path):
        """Full page PNG (the whole document, not only the viewport)."""
        dims = self.driver.execute_script(
            'const d = document.documentElement, b = document.body;'
            'return [Math.max(d.scrollWidth, b ? b.scrollWidth : 0, d.clientWidth),'
            '        Math.max(d.scrollHeight, b ? b.scrollHeight : 0, d.clientHeight)];')
        shot = self.driver.execute_cdp_cmd('Page.captureScreenshot', {
            'format': 'png', 'captureBeyondViewport': True,
            'clip': {'x': 0, 'y': 0, 'width': dims[0], 'height': dims[1], 'scale': 1},
        })
        with open(path, 'wb') as f:
            f.write(base64.b64decode(shot['data']))


driver = None
page = None
consumer = None
download_dir = tempfile.mkdtemp(prefix='ringmq-ui-dl-')
VIEWPORT = (1280, 860)


def launch():
    global driver, page
    set_step('launch chromium')
    if not os.path.exists(chromium_path):
        raise Fail(f'{chromium_path} not found: apt-get install -y chromium (or set CHROMIUM)')
    if not os.path.exists(driver_path):
        raise Fail(f'{driver_path} not found: apt-get install -y chromium-driver (or set CHROMEDRIVER)')
    o = webdriver.ChromeOptions()
    o.binary_location = chromium_path
    if not opt['headed']:
        o.add_argument('--headless=new')
    for a in ('--no-sandbox', '--disable-dev-shm-usage', f'--window-size={VIEWPORT[0]},{VIEWPORT[1]}',
              '--force-device-scale-factor=1', '--hide-scrollbars', '--no-first-run', '--no-default-browser-check',
              '--disable-search-engine-choice-screen', '--password-store=basic'):
        o.add_argument(a)
    o.add_experimental_option('prefs', {
        'download.default_directory': download_dir,
        'download.prompt_for_download': False,
        'download.directory_upgrade': True,
        'credentials_enable_service': False,
        'profile.password_manager_enabled': False,
        'profile.password_manager_leak_detection': False,
    })
    o.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    o.set_capability('unhandledPromptBehavior', 'accept')
    driver = webdriver.Chrome(options=o, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(max(20.0, remaining(60)))
    driver.set_script_timeout(30)
    # the viewport itself, whatever the window decorations (as in the old test: 1280x860, scale 1)
    driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride',
                           {'width': VIEWPORT[0], 'height': VIEWPORT[1], 'deviceScaleFactor': 1, 'mobile': False})
    try:
        driver.execute_cdp_cmd('Browser.setDownloadBehavior', {'behavior': 'allow', 'downloadPath': download_dir})
    except WebDriverException:
        driver.execute_cdp_cmd('Page.setDownloadBehavior', {'behavior': 'allow', 'downloadPath': download_dir})
    page = UI(driver)


def main():
    launch()

    set_step('open the UI')
    st = api_status_url('GET', base)
    if not 200 <= st < 300:
        raise Fail(f'GET {base} answered {st}')
    page.goto(base)
    page.locator('form#login').wait_for(timeout=remaining(20))
    ok('login form shown')

    set_step('reject a wrong password')
    page.locator('#login [name=username]').fill(user)
    page.locator('#login [name=password]').fill(password + '-wrong')
    page.click('#login button[type=submit]')
    page.locator('#login .inline-error:not([hidden])').wait_for()
    if not page.locator('#top').is_hidden():
        raise Fail('header shown after a failed login')

    set_step('log in')
    page.locator('#login [name=password]').fill(password)
    page.click('#login button[type=submit]')
    header = page.locator('#top:not([hidden])')
    login_err = page.locator('#login .inline-error:not([hidden])')  # hidden again on submit

    class Refused(Exception):
        pass

    def header_or_error():
        if header.count():
            return True
        t = login_err.first.text(timeout=1).strip() if login_err.count() else ''
        if t and not header.count():
            raise Refused(t)
        return False

    end = time.monotonic() + remaining(15)
    while True:
        try:
            if header_or_error():
                break
        except Refused as e:
            if time.monotonic() > end:
                raise Fail(f'login as {user} refused: {e}') from None
        except Exception:  # noqa: BLE001
            pass
        if time.monotonic() > end:
            raise Fail('timed out waiting for the header or a login error')
        time.sleep(0.2)
    page.locator('main h1', has_text='Overview').wait_for()
    page.locator('.tiles .tile').first.wait_for()
    ok(f'logged in as {user}, overview shown')

    set_step('declare a queue with the form')
    page.click('#nav a[data-route=queues]')
    form = page.locator('form#add-queue')
    form.wait_for()
    form.locator('[name=vhost]').select_option('/')
    form.locator('[name=name]').fill(QUEUE)
    form.locator('[name=durable]').select_option('false')
    form.locator('button[type=submit]').click()
    page.locator('.toast', has_text='declared').wait_for()
    filt = page.locator('#list-queues input[name=filter]')
    filt.fill(ID)
    row = page.locator('#list-queues tbody tr', has=page.get_by_role('link', QUEUE, exact=True))
    row.wait_for()
    if page.locator('#list-queues tbody b').count():
        raise Fail('queue name markup was rendered as HTML')
    ok('queue declared and listed (name escaped)')

    set_step('publish through the default exchange form')
    page.click('#nav a[data-route=exchanges]')
    page.locator('#list-exchanges').wait_for()
    page.get_by_role('link', '(AMQP default)', exact=True).first.click()
    pub = page.locator('form#publish')
    pub.wait_for()
    pub.locator('[name=routing_key]').fill(QUEUE)
    pub.locator('[name=payload]').fill(PAYLOAD)
    pub.locator('button[type=submit]').click()
    result = pub.locator('.result')
    until('the publish result', lambda: result.text() or False, timeout=15, every=0.2)
    res_text = result.text().strip()
    if not re.search('published and routed', res_text):
        raise Fail(f'publish result: "{res_text}"')
    ok('message published and routed')

    set_step('see the message counted in the queue list')
    page.click('#nav a[data-route=queues]')
    page.locator('#list-queues').wait_for()
    page.locator('#list-queues input[name=filter]').fill(ID)
    total = row.locator('td.col-messages')
    seen = [None]

    def one_counted():
        seen[0] = total.text(timeout=2).strip()
        return seen[0] == '1'

    try:
        until('the queue list to show 1 message', one_counted, timeout=30, every=0.7,
              on_miss=lambda: page.locator('#list-queues button[name=refresh]').click())
    except Fail as e:
        raise Fail(f'{e}; last count shown: "{seen[0]}"') from None
    ok('queue list shows 1 message')

    set_step('get the message on the queue page')
    row.get_by_role('link', QUEUE, exact=True).click()
    page.locator('form#get-messages').wait_for()
    title = page.locator('main .page-title .obj-name').first.text().strip()
    if title != QUEUE:
        raise Fail(f'queue page title is "{title}", expected "{QUEUE}"')
    until('the queue page to count 1 message',
          lambda: page.locator('#queue-counts [data-field=messages]').text(timeout=2).strip() == '1', timeout=20)
    page.locator('form#get-messages button[type=submit]').click()
    shown = page.locator('#messages pre.payload').first
    shown.wait_for()
    got = shown.text()
    if got != PAYLOAD:
        raise Fail(f'payload shown is {json.dumps(got)}, expected {json.dumps(PAYLOAD)}')
    if page.locator('#messages i').count():
        raise Fail('payload markup was rendered as HTML')
    ok('message got, payload shown')

    if opt['full']:
        full_suite()
    if opt['alarm_url']:
        alarm_suite()
    if opt['screenshots']:
        screenshots()

    set_step('delete the queue')
    page.goto(base + '#/' + f'queues/{enc("/")}/{enc(QUEUE)}')
    page.locator('main button[name=delete]').click()
    page.wait_for_hash('#/queues', timeout=remaining(15))
    page.locator('#list-queues input[name=filter]').fill(ID)
    page.locator('#list-queues tbody tr.empty').wait_for()
    if row.count():
        raise Fail('queue still listed after delete')
    st = api_status('GET', QPATH)
    if st != 404:
        raise Fail(f'GET /api{QPATH} answered {st} after delete, expected 404')
    ok('queue deleted, gone from the list and the API')

    set_step('log out')
    page.click('#logout')
    page.locator('form#login').wait_for()
    stored = page.evaluate("return sessionStorage.getItem('ringmq.auth');")
    if stored:
        raise Fail('credentials still in sessionStorage after log out')
    ok('logged out')

    page.collect_js_errors()
    if js_errors:
        raise Fail('JavaScript errors in the page:\n  ' + '\n  '.join(js_errors))


def api_status_url(method, url):
    req = urllib.request.Request(url, method=method)
    try:
        with _opener.open(req, timeout=remaining(20)) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError) as e:
        raise Fail(f'GET {url}: {getattr(e, "reason", e)}') from None


def go(hash_path):
    page.goto(base + '#/' + hash_path)


def row_by_name(scope, name):
    return page.locator(f'{scope} tbody tr[data-name]').filter(
        has=page.locator('td.col-name', has_text=re.compile('^' + re.escape(name) + '$')))


def queue_count():
    go(f'queues/{enc("/")}/{enc(QUEUE)}')
    cell = page.locator('#queue-counts [data-field=messages]')
    cell.wait_for()
    return lambda: cell.text().strip()


def fmt_bytes(n):
    """The UI's fmtBytes (binary units, one decimal above bytes)."""
    units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
    x, i = float(n), 0
    while abs(x) >= 1024 and i < len(units) - 1:
        x /= 1024
        i += 1
    return f'{x:,.0f} B' if i == 0 else f'{x:,.1f} {units[i]}'


def node_alarms(n):
    """The alarm badges the UI must show for a node of /api/nodes."""
    shown = [f'{a} alarm' for a, on in (('memory', n.get('mem_alarm')), ('disk', n.get('disk_free_alarm'))) if on]
    return sorted(shown) or ['no alarms']


def badge_texts(loc):
    return sorted(t.strip() for t in loc.locator('.badge').evaluate_all('return els.map((e) => e.textContent);'))


def check_node_status(root, n):
    """Overview (banner, node card, header) and nodes page (row, details) of the
    broker at root show node n's alarms, memory and disk limits as /api/nodes has them."""
    want = node_alarms(n)
    alarmed = want != ['no alarms']
    set_step(f'the overview shows the node status ({", ".join(want)})')
    page.goto(root + '#/')
    until('the alarm badges on the overview', lambda: badge_texts(page.locator('#node-alarms')) == want, timeout=20)
    banner = page.locator('#alarms')
    if alarmed:
        banner.wait_for()
        for a in want:
            if a not in banner.text():
                raise Fail(f'overview alarm banner lacks "{a}": {banner.text()!r}')
        page.locator('#nav a[data-route=nodes] .badge.alarm').wait_for()
    else:
        if not banner.is_hidden():
            raise Fail(f'alarm banner shown without an alarm: {banner.text()!r}')
        if page.locator('#nav a[data-route=nodes] .badge').count():
            raise Fail('alarm badge in the header without an alarm')
    set_step(f'the nodes page shows the node status ({", ".join(want)})')
    page.click('#nav a[data-route=nodes]')
    row = row_by_name('main', n['name'])
    row.wait_for()
    until('the alarm badges on the nodes page', lambda: badge_texts(row.locator('td.col-alarms')) == want, timeout=10)
    text = row.text()
    for part in (f"of {fmt_bytes(n['mem_limit'])} limit", f"limit {fmt_bytes(n['disk_free_limit'])}",
                 f"of {n['fd_total']:,}", f"of {n['sockets_total']:,}"):
        if part not in text:
            raise Fail(f'node row lacks "{part}": {text!r}')
    if n.get('mem_alarm') and not row.locator('.meter.alarm').count():
        raise Fail('memory meter not red under a memory alarm')
    details = page.locator(f'main .node[data-node="{n["name"]}"]')
    if badge_texts(details.locator('table.kv').first) != want:
        raise Fail('node details show other alarms than the row')


def nodes_checks():
    nodes = api_json('GET', '/nodes')
    check_node_status(base, nodes[0])
    set_step('the nodes page counts connections opened')
    cell = page.locator('#node-churn [data-field=connection_created]')
    seen = [None]

    def same():
        seen[0] = cell.text().strip()
        return seen[0].split(' ')[0].replace(',', '') == str(api_json('GET', '/nodes')[0]['connection_created'])

    try:
        until('the churn counter of the API', same, timeout=15, every=1)
    except Fail as e:
        raise Fail(f'{e}; shown: {seen[0]!r}') from None
    ok(f'node status on the overview and the nodes page ({", ".join(node_alarms(nodes[0]))}, limits, fds, churn)')


def log_in_at(root):
    page.goto(root)
    page.locator('form#login').wait_for(timeout=remaining(20))
    page.locator('#login [name=username]').fill(user)
    page.locator('#login [name=password]').fill(password)
    page.click('#login button[type=submit]')
    page.locator('#top:not([hidden])').wait_for(timeout=remaining(15))


def alarm_suite():
    root = opt['alarm_url'].rstrip('/') + '/'
    set_step('read the alarms of the --alarm-url broker')
    n = api_json('GET', '/nodes', root=root)[0]
    if node_alarms(n) == ['no alarms']:
        raise Fail(f'{root}api/nodes reports no alarm (start it with e.g. --memory-high-watermark 1MiB)')
    set_step('log in to the broker under alarm')
    log_in_at(root)
    check_node_status(root, n)
    ok(f'a broker under alarm shows it: overview banner and badges, header badge, nodes page ({", ".join(node_alarms(n))})')
    set_step('log out of the broker under alarm')
    page.click('#logout')
    page.locator('form#login').wait_for()
    page.goto(base)
    page.locator('#top:not([hidden])').wait_for(timeout=remaining(15))


def set_limit(kind, who, limit, value):
    """Sets a limit with the form of the limits page (kind: vhost or user);
    returns its row, once the page and the API show it."""
    set_step(f'set a {kind} limit with the form')
    f = page.locator(f'form#set-{kind}-limit')
    until(f'"{who}" in the {kind} limit form', lambda: f.locator(f'[name={kind}] option[value="{who}"]').count() > 0,
          timeout=10)
    f.locator(f'[name={kind}]').select_option(who)
    f.locator('[name=limit]').select_option(limit)
    f.locator('[name=value]').fill(str(value))
    f.locator('button[type=submit]').click()
    row = page.locator(f'#limits-{kind} tbody tr[data-name="{who}"][data-limit="{limit}"]')
    row.wait_for()
    if row.locator('td.col-value').text().strip() != str(value):
        raise Fail(f'{kind} limit row shows {row.text()!r}')
    got = api_json('GET', f'/{kind}-limits/{enc(who)}')
    if got != [{kind: who, 'value': {limit: value}}]:
        raise Fail(f'{kind} limits in the API: {got}')
    return row


def clear_limit(kind, who, row):
    set_step(f'clear the {kind} limit')
    row.get_by_role('button', 'Clear').click()
    until(f'the {kind} limit row to disappear', lambda: row.count() == 0, timeout=10)
    got = api_json('GET', f'/{kind}-limits/{enc(who)}')
    if got:
        raise Fail(f'{kind} limits left in the API: {got}')


def limits_checks(vh, un):
    page.click('#nav a[data-route=limits]')
    vrow = set_limit('vhost', vh, 'max-queues', 0)
    set_step('the vhost limit refuses a queue declared with the form')
    page.click('#nav a[data-route=queues]')
    qf = page.locator('form#add-queue')
    qf.locator('[name=vhost]').select_option(vh)
    qf.locator('[name=name]').fill(f'ui-limited-{ID}')
    qf.locator('button[type=submit]').click()
    refused = page.locator('.toast.error', has_text='queue limit')
    refused.wait_for()
    refused.locator('button.close').click()
    st = api_status('GET', f'/queues/{enc(vh)}/ui-limited-{ID}')
    if st != 404:
        raise Fail(f'queue declared over a max-queues limit of 0 (GET answered {st})')
    page.click('#nav a[data-route=limits]')
    clear_limit('vhost', vh, vrow)
    ok('vhost limit set (max-queues 0 refuses a queue from the form), shown and cleared')
    clear_limit('user', un, set_limit('user', un, 'max-channels', 5))
    ok('user limit set, shown and cleared')


def pick_user_and_vhost(form, un, vh):
    """Selects a user made a moment ago (the form lists it at its next refresh) and a vhost."""
    until(f'user {un} in {form.desc}', lambda: form.locator(f'[name=user] option[value="{un}"]').count() > 0, timeout=10)
    form.locator('[name=user]').select_option(un)
    form.locator('[name=vhost]').select_option(vh)


def remove_with_button(row, button, what, path):
    """Clicks the row's button, waits for the row to go and for GET /api{path} to answer 404."""
    set_step(f'{button.lower()} the {what}')
    row.get_by_role('button', button).click()
    until(f'the {what} row to disappear', lambda: row.count() == 0, timeout=10)
    st = api_status('GET', path)
    if st != 404:
        raise Fail(f'{what} still there after {button.lower()} (GET /api{path} answered {st})')


def topic_permission_checks(vh, un):
    set_step('set a topic permission with the form')
    write = '^ui\\.{username}\\.'
    page.click('#nav a[data-route=topic-permissions]')
    tf = page.locator('form#set-topic-permission')
    pick_user_and_vhost(tf, un, vh)
    tf.locator('[name=exchange]').fill('amq.topic')
    tf.locator('[name=write]').fill(write)
    tf.locator('[name=read]').fill('.*')
    tf.locator('button[type=submit]').click()
    trow = page.locator(f'main tbody tr[data-name="{un}"][data-vhost="{vh}"][data-exchange="amq.topic"]')
    trow.wait_for()
    if not trow.locator('code', has_text=write).count():
        raise Fail(f'topic permission row shows {trow.text()!r}')
    got = api_json('GET', f'/topic-permissions/{enc(vh)}/{enc(un)}')
    if got != [{'user': un, 'vhost': vh, 'exchange': 'amq.topic', 'write': write, 'read': '.*'}]:
        raise Fail(f'topic permissions in the API: {got}')
    remove_with_button(trow, 'Clear', 'topic permission', f'/topic-permissions/{enc(vh)}/{enc(un)}')
    ok('topic permission set, shown and cleared')


def submit_policy_form(form, name, pattern, definition):
    """Adds a policy or an operator policy in vhost / for queues with the form; returns its row once listed."""
    form.wait_for()
    form.locator('[name=vhost]').select_option('/')
    form.locator('[name=name]').fill(name)
    form.locator('[name=pattern]').fill(pattern)
    form.locator('[name=apply-to]').select_option('queues')
    form.locator('[name=definition]').fill(definition)
    form.locator('button[type=submit]').click()
    row = row_by_name('main', name)
    row.wait_for()
    return row


def operator_policy_checks():
    set_step('add an operator policy with the form')
    opn = f'ui-op-{ID}'
    page.click('#nav a[data-route=operator-policies]')
    of = page.locator('form#add-operator-policy')
    orow = submit_policy_form(of, opn, f'^ui test/{ID} ', '{"max-length": 1000}')  # the test queue only
    got = api_json('GET', f'/operator-policies/%2F/{opn}')
    if got.get('definition') != {'max-length': 1000} or got.get('apply-to') != 'queues':
        raise Fail(f'operator policy in the API: {got}')
    set_step('the queue page names the operator policy')
    go(f'queues/{enc("/")}/{enc(QUEUE)}')
    cell = page.locator('main table.kv tr', has_text='Operator policy').locator('td')
    until('the operator policy on the queue page', lambda: cell.text().strip() == opn, timeout=15,
          on_miss=page.reload)
    set_step('update the operator policy with Edit')
    page.click('#nav a[data-route=operator-policies]')
    orow.get_by_role('button', 'Edit').click()
    of.locator('[name=definition]').fill('{"max-length": 500}')
    of.locator('button[type=submit]').click()
    until('the updated definition in the list', lambda: '"max-length":500' in orow.text(), timeout=10)
    got = [None]

    def applied():  # RabbitMQ shows a queue's new policy with its next stats (every 5 s)
        got[0] = api_json('GET', QPATH)
        return got[0].get('operator_policy') == opn and (got[0].get('effective_policy_definition') or {}).get('max-length') == 500

    try:
        until('the updated operator policy on the queue', applied, timeout=15, every=0.5)
    except Fail as e:
        raise Fail(f'{e}: operator_policy {got[0].get("operator_policy")}, '
                   f'effective definition {got[0].get("effective_policy_definition")}') from None
    remove_with_button(orow, 'Delete', 'operator policy', f'/operator-policies/%2F/{opn}')
    ok('operator policy added, applied to the queue, updated and deleted')


def pause_checks():
    product = api_json('GET', '/overview').get('product_name') or 'this broker'
    if product != 'ringmq':
        say(f'skip - queue pause and resume: {product} has none (RabbitMQ 3.10 answers 400 to the action)')
        return
    set_step('pause the queue on its page')
    go(f'queues/{enc("/")}/{enc(QUEUE)}')
    box = page.locator('#pause-queue')
    state = box.locator('.queue-state')
    box.get_by_role('button', 'Pause queue').click()
    until('the page to show the queue paused', lambda: state.text().strip() == 'paused', timeout=10)
    if api_json('GET', QPATH).get('state') != 'paused':
        raise Fail('the API does not report the queue paused')
    set_step('the queue list shows the queue paused')
    page.click('#nav a[data-route=queues]')
    page.locator('#list-queues input[name=filter]').fill(ID)
    qrow = page.locator('#list-queues tbody tr', has=page.get_by_role('link', QUEUE, exact=True))
    until('"paused" in the queue list', lambda: qrow.locator('td.col-state').text().strip() == 'paused', timeout=10)
    set_step('resume the queue on its page')
    qrow.get_by_role('link', QUEUE, exact=True).click()
    box.get_by_role('button', 'Resume queue').click()
    until('the page to show the queue running', lambda: state.text().strip() == 'running', timeout=10)
    if api_json('GET', QPATH).get('state') != 'running':
        raise Fail('the API does not report the queue running after resume')
    ok('queue paused and resumed on its page (state on the page, in the list and in the API)')


def shovel_checks():
    """The shovels page: add one with the form (queue to queue on this broker), see it
    running, a message published to its source arrive at its destination,
    restart it, delete it."""
    product = api_json('GET', '/overview').get('product_name') or 'this broker'
    if product != 'ringmq':
        say(f'skip - shovels page: {product} shows shovels only with its shovel plugins')
        return
    set_step('add a shovel with the form')
    src, dest, sn = f'ui-shovel-src-{ID}', f'ui-shovel-dest-{ID}', f'ui-shovel-{ID}'
    for q in (src, dest):
        api_request('PUT', f'/queues/%2F/{enc(q)}', {'durable': True})
    page.click('#nav a[data-route=shovels]')
    sf = page.locator('form#add-shovel')
    sf.wait_for()
    sf.locator('[name=vhost]').select_option('/')
    sf.locator('[name=name]').fill(sn)
    sf.locator('[name=src-queue]').fill(src)
    sf.locator('[name=dest-queue]').fill(dest)
    sf.locator('button[type=submit]').click()
    row = row_by_name('main', sn)
    row.wait_for()
    got = api_json('GET', f'/parameters/shovel/%2F/{enc(sn)}')
    if got.get('value', {}).get('src-queue') != src or got['value'].get('dest-queue') != dest:
        raise Fail(f'shovel parameter in the API: {got}')
    state = row.locator('[data-field=state]')
    until('the shovel running on its row', lambda: state.text().strip() == 'running', timeout=15,
          on_miss=page.reload)
    set_step('a message published to the source reaches the destination')
    api_json('POST', '/exchanges/%2F/amq.default/publish', {
        'properties': {}, 'routing_key': src, 'payload': 'shovelled', 'payload_encoding': 'string'})
    until('the message in the destination queue',
          lambda: api_json('GET', f'/queues/%2F/{enc(dest)}').get('messages') == 1, timeout=15)
    set_step('restart the shovel with its button')
    row.get_by_role('button', 'Restart').click()
    until('the shovel running again', lambda: state.text().strip() == 'running', timeout=15)
    remove_with_button(row, 'Delete', 'shovel', f'/parameters/shovel/%2F/{enc(sn)}')
    for q in (src, dest):
        api_request('DELETE', f'/queues/%2F/{enc(q)}')
    ok('shovel added, running, moved a message, restarted and deleted')


def federation_checks():
    """The federation page: add an upstream with the form (this broker, amqp://,
    another exchange as the upstream one), federate an exchange from it with a
    policy, see its link running, a message published upstream reach a queue
    bound downstream, restart the link, delete the upstream (the link goes)."""
    product = api_json('GET', '/overview').get('product_name') or 'this broker'
    if product != 'ringmq':
        say(f'skip - federation page: {product} shows federation only with its federation plugins')
        return
    set_step('add a federation upstream with the form')
    up, x, upx, q, pol = f'ui-up-{ID}', f'ui-fed-{ID}', f'ui-fed-up-{ID}', f'ui-fed-q-{ID}', f'ui-fed-{ID}'
    api_request('PUT', f'/exchanges/%2F/{enc(x)}', {'type': 'fanout', 'durable': True})
    api_request('PUT', f'/queues/%2F/{enc(q)}', {'durable': True})
    api_request('POST', f'/bindings/%2F/e/{enc(x)}/q/{enc(q)}', {'routing_key': ''})
    page.click('#nav a[data-route=federation]')
    uf = page.locator('form#add-upstream')
    uf.wait_for()
    uf.locator('[name=vhost]').select_option('/')
    uf.locator('[name=name]').fill(up)
    uf.locator('[name=exchange]').fill(upx)
    uf.locator('button[type=submit]').click()
    urow = row_by_name('#list-upstreams', up)
    urow.wait_for()
    got = api_json('GET', f'/parameters/federation-upstream/%2F/{enc(up)}')
    if got.get('value', {}).get('uri') != 'amqp://' or got['value'].get('exchange') != upx:
        raise Fail(f'upstream parameter in the API: {got}')
    set_step('a policy federates an exchange from it: its link running')
    api_json('PUT', f'/policies/%2F/{enc(pol)}', {
        'pattern': f'^{x}$', 'apply-to': 'exchanges', 'definition': {'federation-upstream': up}})
    lrow = row_by_name('#list-federation-links', x)
    status = lrow.locator('[data-field=status]')
    until('the link running on its row', lambda: lrow.count() == 1 and status.text().strip() == 'running',
          timeout=15, on_miss=page.reload)
    set_step('a message published upstream reaches the queue bound downstream')
    api_json('POST', f'/exchanges/%2F/{enc(upx)}/publish', {
        'properties': {}, 'routing_key': '', 'payload': 'federated', 'payload_encoding': 'string'})
    until('the message in the downstream queue',
          lambda: api_json('GET', f'/queues/%2F/{enc(q)}').get('messages') == 1, timeout=15)
    set_step('restart the link with its button')
    lrow.get_by_role('button', 'Restart').click()
    until('the link running again', lambda: status.text().strip() == 'running', timeout=15, on_miss=page.reload)
    remove_with_button(urow, 'Delete', 'upstream', f'/parameters/federation-upstream/%2F/{enc(up)}')
    until('the link gone from the page', lambda: lrow.count() == 0, timeout=15, on_miss=page.reload)
    cluster = api_json('GET', '/overview').get('cluster_name')
    up_q = f'federation: {upx} -> {cluster}:{x}'
    api_request('DELETE', f'/policies/%2F/{enc(pol)}')
    for path in (f'/queues/%2F/{enc(q)}', f'/queues/%2F/{enc(up_q)}', f'/exchanges/%2F/{enc(up_q + " A")}',
                 f'/exchanges/%2F/{enc(x)}', f'/exchanges/%2F/{enc(upx)}'):
        api_request('DELETE', path)
    ok('federation upstream added, its link running, moved a message, restarted, gone with the upstream')


def consumers_checks():
    set_step('open the consumers page')
    page.click('#nav a[data-route=consumers]')
    lst = page.locator('#list-consumers')
    lst.wait_for()
    if not opt['amqp']:
        ok('consumers page shown (no --amqp: no consumer of ours to list)')
        return
    cq = f'ui-consumer-{ID}'
    c = open_consumer(opt['amqp'], cq, prefetch=3, connection_name=cq)
    try:
        set_step('the consumers page lists our consumer')
        lst.locator('input[name=filter]').fill(cq)
        row = lst.locator(f'tbody tr[data-queue="{cq}"]')
        until('the consumer to be listed', lambda: row.count() == 1, timeout=20, every=1,
              on_miss=lambda: lst.locator('button[name=refresh]').click())
        mine = [x for x in api_json('GET', '/consumers') if (x.get('queue') or {}).get('name') == cq]
        if len(mine) != 1:
            raise Fail(f'/api/consumers lists {len(mine)} consumers on {cq}')
        want = {'td.col-tag': mine[0]['consumer_tag'], 'td.col-ack': 'manual ack', 'td.col-prefetch': '3',
                'td.col-active': 'yes'}
        for css, v in want.items():
            got = row.locator(css).text().strip()
            if got != v:
                raise Fail(f'consumer row {css} shows {got!r}, expected {v!r}')
        row.get_by_role('link', mine[0]['channel_details']['name'], exact=True).wait_for()
        set_step('from the consumer to its queue')
        row.get_by_role('link', cq, exact=True).click()
        page.locator('main .page-title .obj-name', has_text=cq).first.wait_for()
        page.locator('main td.col-tag', has_text=mine[0]['consumer_tag']).wait_for()
        ok('consumers page lists the consumer (queue, channel, tag, ack mode, prefetch) and links to its queue')
    finally:
        c.close()
    stream_consumer_checks()


def stream_consumer_checks():
    """A stream's consumer with its offset on the queue page (ringmq's
    stream_offset: RabbitMQ 3.10 shows none for AMQP consumers)."""
    product = api_json('GET', '/overview').get('product_name') or 'this broker'
    if product != 'ringmq':
        say(f'skip - stream consumer offsets: {product} shows none')
        return
    set_step('a stream consumer shows its offset on the queue page')
    sq = f'ui-stream-{ID}'
    api_json('PUT', f'/queues/%2F/{sq}', {'durable': True, 'arguments': {'x-queue-type': 'stream'}})
    try:
        for i in range(5):
            api_json('POST', '/exchanges/%2F/amq.default/publish', {
                'properties': {}, 'routing_key': sq, 'payload': f's{i}', 'payload_encoding': 'string'})
        # Prefetch 3, no acks: sent offsets 0..2, reads 3 next.
        c = open_consumer(opt['amqp'], sq, prefetch=3, connection_name=sq, stream=True)
        try:
            go(f'queues/{enc("/")}/{enc(sq)}')
            cell = page.locator('main td.col-stream-offset')
            until('the consumer\'s offset to show', lambda: cell.count() == 1 and cell.text().strip() == '3',
                  timeout=20, every=1)
            ok('a stream consumer shows the offset it reads next on the queue page')
        finally:
            c.close()
    finally:
        api_status('DELETE', f'/queues/%2F/{sq}')


def full_suite():
    # ---- list paging, sorting, regex filter, vhost picker (25 queues made with the API)
    set_step('make 25 queues with the API')
    pre = f'ui-page-{ID}-'
    names = [pre + f'{i:02d}' for i in range(25)]
    try:
        for n in names:
            st, text = api_request('PUT', f'/queues/%2F/{enc(n)}', b'{"durable":false}')
            if st >= 300:
                raise Fail(f'PUT queue {n}: {st} {text.decode("utf-8", "replace")}')
        set_step('page through the queue list')
        page.click('#nav a[data-route=queues]')
        lst = page.locator('#list-queues')
        lst.locator('select[name=page_size]').select_option('20')
        lst.locator('input[name=regex]').set_checked(False)
        lst.locator('input[name=filter]').fill(pre)
        rows = lst.locator('tbody tr[data-name]')

        def first_name():
            return rows.first.get_attribute('data-name')

        until('20 rows on page 1', lambda: rows.count() == 20 and first_name() == names[0], timeout=15)

        def info():
            return lst.locator('.pager').text() + ' ' + lst.locator('.count').text()

        if not re.search(r'Page 1 of 2', info()) or not re.search(r'\(25 of \d+\)', info()):
            raise Fail(f'pager/count shows "{info()}"')
        lst.get_by_role('button', 'Next ›').click()
        until('5 rows on page 2', lambda: rows.count() == 5 and first_name() == names[20], timeout=15)
        ok('queue list pages (20 per page: 20 + 5 of 25)')
        set_step('sort the queue list')
        lst.get_by_role('button', 'Prev').click()
        until('page 1 again', lambda: first_name() == names[0], timeout=15)
        lst.locator('th button', has_text='Name').click()  # name is the current sort: reverse it
        until('reverse name order', lambda: first_name() == names[24], timeout=15)
        lst.locator('th button', has_text='Name').click()
        until('name order again', lambda: first_name() == names[0], timeout=15)
        ok('queue list sorts by name both ways')
        set_step('filter the queue list with a regex')
        lst.locator('input[name=regex]').set_checked(True)
        lst.locator('input[name=filter]').fill(f'^{pre}1[0-4]$')
        until('5 regex matches', lambda: rows.count() == 5 and first_name() == names[10], timeout=15)
        lst.locator('input[name=regex]').set_checked(False)
        ok('regex filter')
        set_step('pick a vhost in the header')
        page.locator('#vhost-select').select_option('/')
        lst.locator('input[name=filter]').fill(pre)
        until('the list of vhost / without a vhost column',
              lambda: rows.count() == 20 and lst.locator('thead th', has_text='Virtual host').count() == 0, timeout=15)
        page.locator('#vhost-select').select_option('')
        until('the vhost column back', lambda: lst.locator('thead th', has_text='Virtual host').count() == 1, timeout=15)
        lst.locator('select[name=page_size]').select_option('50')
        lst.locator('input[name=filter]').fill('')
        ok('vhost picker filters the lists')
    finally:
        for n in names:
            try:
                api_status('DELETE', f'/queues/%2F/{enc(n)}')
            except Exception:  # noqa: BLE001
                pass

    # ---- node status, alarms
    nodes_checks()

    # ---- vhosts
    set_step('add a vhost with the form')
    vh = f'ui-vh-{ID}'
    page.click('#nav a[data-route=vhosts]')
    vf = page.locator('form#add-vhost')
    vf.locator('[name=name]').fill(vh)
    vf.locator('[name=description]').fill('made by the UI test')
    vf.locator('button[type=submit]').click()
    row_by_name('main', vh).wait_for()
    if not page.locator('#vhost-select option', has_text=vh).count():
        raise Fail('new vhost missing from the vhost picker')
    ok('vhost added')

    # ---- users and permissions
    set_step('add a user with the form')
    un = f'ui-user-{ID}'
    page.click('#nav a[data-route=users]')
    uf = page.locator('form#add-user')
    uf.locator('[name=username]').fill(un)
    uf.locator('[name=password]').fill('pw-' + ID)
    uf.locator('button.tagpick', has_text='monitoring').click()
    uf.locator('button[type=submit]').click()
    urow = row_by_name('main', un)
    urow.wait_for()
    if not urow.locator('.badge', has_text='monitoring').count():
        raise Fail('user row lacks the monitoring tag')
    set_step('set permissions with the form')
    pf = page.locator('form#set-permissions')
    pick_user_and_vhost(pf, un, vh)
    pf.locator('[name=configure]').fill('^ui-')
    pf.locator('button[type=submit]').click()
    perm = (page.locator('main tbody tr', has_text=un).filter(has_text=vh)
            .filter(has=page.locator('button', has_text='Clear')))
    perm.wait_for()
    if not perm.locator('code', has_text='^ui-').count():
        raise Fail('permission row does not show the configure regex')
    until('the user row to list the vhost', lambda: vh in urow.text(), timeout=10)
    set_step('clear permissions')
    perm.get_by_role('button', 'Clear').click()
    until('the permission row to disappear', lambda: perm.count() == 0, timeout=10)
    ok('user added with tags, permissions set and cleared')

    # ---- limits and topic permissions of the new vhost and user
    limits_checks(vh, un)
    topic_permission_checks(vh, un)

    set_step('delete the user')
    page.click('#nav a[data-route=users]')
    urow.get_by_role('button', 'Delete').click()
    until('the user row to disappear', lambda: urow.count() == 0, timeout=10)
    ok('user deleted')

    set_step('delete the vhost')
    page.click('#nav a[data-route=vhosts]')
    vrow = row_by_name('main', vh)
    vrow.get_by_role('button', 'Delete').click()
    until('the vhost row to disappear', lambda: vrow.count() == 0, timeout=10)
    ok('vhost deleted')

    # ---- exchange, binding, publish routed / not routed
    set_step('add an exchange with the form')
    xn = f'ui-x-{ID}'
    page.click('#nav a[data-route=exchanges]')
    xf = page.locator('form#add-exchange')
    xf.locator('[name=vhost]').select_option('/')
    xf.locator('[name=name]').fill(xn)
    xf.locator('[name=type]').select_option('fanout')
    xf.locator('[name=durable]').select_option('false')
    xf.locator('button[type=submit]').click()
    page.locator('#list-exchanges input[name=filter]').fill(xn)
    page.get_by_role('link', xn, exact=True).click()
    set_step('bind the exchange to the queue')
    bf = page.locator('form#add-exchange-binding')
    bf.wait_for()
    bf.locator('[name=dtype]').select_option('q')
    bf.locator('[name=destination]').fill(QUEUE)
    bf.locator('[name=routing_key]').fill('rk/1 x')
    bf.locator('button[type=submit]').click()
    brow = page.locator('main tbody tr', has=page.get_by_role('link', QUEUE, exact=True))
    brow.wait_for()
    ok('exchange added and bound to the queue')
    set_step('publish through the exchange')
    pub = page.locator('form#publish')
    pub.locator('[name=payload]').fill('second ' + ID)
    pub.locator('[name=headers]').fill('{"x-ui": "yes"}')
    pub.locator('button[type=submit]').click()
    until('a routed result', lambda: re.search('published and routed', pub.locator('.result').text()), timeout=10, every=0.2)
    set_step('the queue page shows the binding and counts 2 messages')
    count = queue_count()
    page.locator('main tbody tr', has_text=xn).filter(has_text='rk/1 x').wait_for()
    seen = [None]

    def counted(n):
        def f():
            seen[0] = count_fn[0]()
            return seen[0] == n
        return f

    count_fn = [count]
    try:
        until('2 messages on the queue page', counted('2'), timeout=30, every=0.7)
    except Fail as e:
        raise Fail(f'{e}; shown: {seen[0]}') from None
    ok('message routed through the binding')
    set_step('unbind on the queue page')
    qb = page.locator('main tbody tr', has_text=xn)
    qb.get_by_role('button', 'Unbind').click()
    until('the binding to disappear', lambda: qb.count() == 0, timeout=10)
    set_step('publish again: not routed')
    go(f'exchanges/{enc("/")}/{enc(xn)}')
    pub.locator('[name=payload]').fill('third ' + ID)
    pub.locator('button[type=submit]').click()
    until('a "not routed" result', lambda: re.search('not routed', pub.locator('.result').text()), timeout=10, every=0.2)
    ok('unbound; publish reports not routed')
    set_step('delete the exchange')
    page.locator('main button[name=delete]').click()
    page.wait_for_hash('#/exchanges', timeout=remaining(15))
    xs = api_status('GET', f'/exchanges/%2F/{enc(xn)}')
    if xs != 404:
        raise Fail(f'exchange still there after delete (GET answered {xs})')
    ok('exchange deleted')

    # ---- operator policy on the queue, pause and resume
    operator_policy_checks()
    pause_checks()
    shovel_checks()
    federation_checks()

    # ---- purge
    set_step('purge the queue')
    count_fn[0] = queue_count()
    page.locator('main button[name=purge]').click()

    def reload_counts():
        page.reload()
        page.locator('#queue-counts').wait_for()

    try:
        until('0 messages after purge', counted('0'), timeout=30, every=0.7, on_miss=reload_counts)
    except Fail as e:
        raise Fail(f'{e}; shown: {seen[0]}') from None
    ok('queue purged')

    # ---- definitions
    set_step('export definitions')
    page.click('#nav a[data-route=definitions]')
    before = set(os.listdir(download_dir))
    page.locator('form#export-definitions button[type=submit]').click()

    def downloaded():
        new = [f for f in set(os.listdir(download_dir)) - before
               if not f.endswith('.crdownload') and not f.startswith('.')]
        if not new:
            return None
        p = os.path.join(download_dir, new[0])
        try:
            with open(p, encoding='utf-8') as fh:
                return new[0], json.load(fh)
        except (OSError, ValueError):
            return None  # still being written

    fname, defs = until('the definitions download', downloaded, timeout=remaining(15), every=0.2)
    if not isinstance(defs.get('queues'), list) or not any(q.get('name') == QUEUE for q in defs['queues']):
        raise Fail('exported definitions do not list the test queue')
    ok(f'definitions exported ({fname})')
    set_step('import definitions')
    imported = f'ui-imported-{ID}'
    body = {'queues': [{'name': imported, 'vhost': '/', 'durable': False, 'auto_delete': False, 'arguments': {}}]}
    upload = os.path.join(tempfile.mkdtemp(prefix='ringmq-ui-up-'), 'defs.json')
    with open(upload, 'w', encoding='utf-8') as fh:
        json.dump(body, fh)
    try:
        page.locator('form#import-definitions input[type=file]').set_input_files(upload)
        page.locator('form#import-definitions button[type=submit]').click()
        page.locator('.toast', has_text='imported').wait_for()
    finally:
        shutil.rmtree(os.path.dirname(upload), ignore_errors=True)
    is_ = api_status('GET', f'/queues/%2F/{imported}')
    api_status('DELETE', f'/queues/%2F/{imported}')
    if is_ != 200:
        raise Fail(f'imported queue not found (GET answered {is_})')
    ok('definitions imported')

    consumers_checks()

    # ---- close a connection
    if opt['amqp']:
        set_step('close a connection with a reason')
        c = open_consumer(opt['amqp'], f'ui-close-{ID}', connection_name=f'ui-close-{ID}')
        try:
            go('connections')
            until('the connection to be listed', lambda: page.locator('#list-connections tbody tr[data-name]').count() > 0,
                  timeout=20, every=1, on_miss=lambda: page.locator('#list-connections button[name=refresh]').click())
            # ours is the one whose client properties carry our connection_name
            conn_names = page.locator('#list-connections tbody tr[data-name]').evaluate_all(
                "return els.map((r) => r.getAttribute('data-name'));")
            target = None
            for n in conn_names:
                st, text = api_request('GET', f'/connections/{enc(n)}')
                j = json.loads(text) if 200 <= st < 300 and text else {}
                if (j.get('client_properties') or {}).get('connection_name') == f'ui-close-{ID}':
                    target = n
            if not target:
                raise Fail('test connection not found in the connections list')
            go(f'connections/{enc(target)}')
            cf = page.locator('form#close-connection')
            cf.locator('[name=reason]').fill(f'closed by UI test {ID}')
            cf.locator('button[type=submit]').click()
            page.wait_for_hash('#/connections', timeout=remaining(15))
            why = c.wait_closed(10) or '(still open after 10 s)'
            if f'closed by UI test {ID}' not in why:
                raise Fail(f'connection end: {why}')
            ok('connection closed with the reason')
        finally:
            c.close()


def shot(name, ready=None):
    set_step(f'screenshot {name}')
    if ready:
        ready()
    page.evaluate('for (const t of document.querySelectorAll(".toast")) t.remove();'
                  'if (document.activeElement) document.activeElement.blur();'
                  'window.scrollTo(0, 0);')
    time.sleep(0.3)  # let the last repaint land
    f = os.path.join(opt['screenshots'], f'{name}.png')
    page.screenshot(f)
    say(f'   saved {f}')


# A few realistic objects for the screenshots; removed after (only what was made here).
demo = {'queues': [], 'exchanges': [], 'users': []}
DEMO_QUEUES = ['orders.created', 'orders.shipped', 'billing.invoices', 'audit.log']
demo_seq = [1000]


def demo_publish(routing_key, exchange='events'):
    demo_seq[0] += 1
    s = demo_seq[0]
    payload = json.dumps({'order': s, 'customer': f'c-{(s * 7919) % 1000}', 'total': ((s * 37) % 500) + 0.99,
                          'currency': 'EUR'}, separators=(',', ':'))
    api_json('POST', f'/exchanges/%2F/{"amq.default" if exchange == "" else exchange}/publish', {
        'properties': {'content_type': 'application/json', 'delivery_mode': 2, 'message_id': f'm-{s}'},
        'routing_key': routing_key, 'payload': payload, 'payload_encoding': 'string',
    })


def make_demo():
    set_step('make demo objects for the screenshots')
    for q in DEMO_QUEUES:
        if api_status('GET', f'/queues/%2F/{q}') == 404:
            api_json('PUT', f'/queues/%2F/{q}', {'durable': True, 'auto_delete': False,
                                                 'arguments': {'x-max-length': 100000} if q == 'audit.log' else {}})
            demo['queues'].append(q)
    if api_status('GET', '/exchanges/%2F/events') == 404:
        api_json('PUT', '/exchanges/%2F/events', {'type': 'topic', 'durable': True, 'auto_delete': False,
                                                  'internal': False, 'arguments': {}})
        demo['exchanges'].append('events')
    for q, rk in (('orders.created', 'orders.created'), ('orders.shipped', 'orders.shipped'), ('audit.log', '#')):
        api_json('POST', f'/bindings/%2F/e/events/q/{q}', {'routing_key': rk, 'arguments': {}})
    for u, tags, perm in (('app-orders', '', ('^orders\\.', '^(events|orders\\..*)$', '^orders\\.')),
                          ('grafana', 'monitoring', None), ('ops', 'administrator', ('.*', '.*', '.*'))):
        if api_status('GET', f'/users/{u}') != 404:
            continue
        api_json('PUT', f'/users/{u}', {'password': f'demo-{ID}', 'tags': tags})
        demo['users'].append(u)
        if perm:
            api_json('PUT', f'/permissions/%2F/{u}', {'configure': perm[0], 'write': perm[1], 'read': perm[2]})
    for _ in range(7):
        demo_publish('orders.created')
    for _ in range(3):
        demo_publish('orders.shipped')
    for _ in range(12):
        demo_publish('billing.invoices', '')


def drop_demo():
    for kind, fmt in (('queues', '/queues/%2F/{}'), ('exchanges', '/exchanges/%2F/{}'), ('users', '/users/{}')):
        while demo[kind]:
            x = demo[kind].pop(0)
            try:
                api_status('DELETE', fmt.format(x))
            except Exception:  # noqa: BLE001
                pass


def screenshots():
    global consumer
    os.makedirs(opt['screenshots'], exist_ok=True)
    make_demo()
    if opt['amqp']:
        set_step('open an AMQP consumer')
        consumer = open_consumer(opt['amqp'], f'notifications-{ID[-4:]}', prefetch=10)
    set_step('queue detail of a demo queue')
    go(f'queues/{enc("/")}/orders.created')
    until('7 messages in orders.created',
          lambda: page.locator('#queue-counts [data-field=messages]').text().strip() == '7',
          timeout=20, every=1, on_miss=page.reload)
    page.locator('form#get-messages [name=count]').fill('2')
    page.locator('form#get-messages button[type=submit]').click()
    page.locator('#messages .message').nth(1).wait_for()
    shot('queue-detail')
    # a policy through the form, for the policies page (removed again below)
    pname = f'ui-demo-{ID}'
    set_step('add a policy with the form')
    page.goto(base + '#/policies')
    prow = submit_policy_form(page.locator('form#add-policy'), pname, '^ui-demo\\.',
                              '{"max-length": 10000, "message-ttl": 3600000}')
    ok('policy added with the form')
    shot('policies')
    set_step('delete the policy')
    prow.get_by_role('button', 'Delete').click()
    until('the policy to disappear', lambda: prow.count() == 0, timeout=10)
    ok('policy deleted')

    page.goto(base + '#/queues')
    page.locator('#list-queues input[name=filter]').fill('')
    shot('queues', lambda: page.locator('#list-queues tbody tr').first.wait_for())
    page.goto(base + '#/exchanges')
    page.locator('#list-exchanges input[name=filter]').fill('')  # --full left its exchange's name there
    shot('exchanges', lambda: page.locator('#list-exchanges tbody tr[data-name]').first.wait_for())

    # with --amqp, wait (refreshing) for the connection to be listed: RabbitMQ
    # emits connection stats every 5 s
    def listed(key):
        def ready():
            if not consumer:
                return
            until(f'a row in the {key} list', lambda: page.locator(f'#list-{key} tbody tr[data-name]').count() > 0,
                  timeout=20, every=1, on_miss=lambda: page.locator(f'#list-{key} button[name=refresh]').click())
        return ready

    page.goto(base + '#/connections')
    shot('connections', listed('connections'))
    page.goto(base + '#/channels')
    shot('channels', listed('channels'))
    page.goto(base + '#/users')
    shot('users', lambda: page.locator('main tbody tr[data-name]').first.wait_for())
    page.goto(base + '#/consumers')
    shot('consumers', listed('consumers'))
    page.goto(base + '#/nodes')
    shot('nodes', lambda: page.locator('main .node').first.wait_for())
    page.goto(base + '#/')

    # three polls with some traffic, so the charts have lines
    def traffic():
        end = time.monotonic() + 15.5
        while time.monotonic() < end:
            demo_publish('orders.created' if random.random() < 0.7 else 'orders.shipped')
            if random.random() < 0.5:
                api_json('POST', '/queues/%2F/orders.created/get',
                         {'count': 1, 'ackmode': 'ack_requeue_false', 'encoding': 'auto', 'truncate': 1000})
            time.sleep(0.25)

    shot('overview', traffic)
    drop_demo()
    if consumer:
        consumer.close()
        consumer = None


def cleanup():
    global consumer, driver
    try:
        drop_demo()
    except Exception:  # noqa: BLE001
        pass
    try:
        if consumer:
            consumer.close()
            consumer = None
    except Exception:  # noqa: BLE001
        pass
    try:
        api_status('DELETE', QPATH)
    except Exception:  # noqa: BLE001
        pass
    if driver:
        d, driver = driver, None
        try:
            d.quit()
        except Exception:  # noqa: BLE001
            pass
    shutil.rmtree(download_dir, ignore_errors=True)


def on_overall_timeout():
    say(f"FAIL: overall timeout of {opt['timeout']:g}s reached during step \"{state['step']}\"", err=True)
    t = threading.Thread(target=cleanup, daemon=True)
    t.start()
    t.join(15)
    say(f"ui: {state['passed']} passed, 1 failed")
    os._exit(1)


def run():
    killer = threading.Timer(opt['timeout'] + 15, on_overall_timeout)
    killer.daemon = True
    killer.start()
    try:
        main()
        killer.cancel()
        cleanup()
        say(f"ui: {state['passed']} passed, 0 failed")
        return 0
    except BaseException as e:  # noqa: BLE001 - report any failure as the failing step
        killer.cancel()
        if isinstance(e, KeyboardInterrupt):
            msg = 'interrupted'
        else:
            msg = errmsg(e) if not isinstance(e, Fail) else str(e)
        say(f"FAIL at step \"{state['step']}\": " + '\n'.join(msg.split('\n')[:6]), err=True)
        if page:
            page.collect_js_errors()
        if js_errors and not msg.startswith('JavaScript errors'):
            say('JavaScript errors in the page:\n  ' + '\n  '.join(js_errors), err=True)
        if page:
            f = os.path.join(os.environ.get('TMPDIR') or '/tmp', f'ringmq-ui-failure-{ID}.png')
            try:
                page.screenshot(f)
                say(f'page at failure: {f} (URL {page.url()})', err=True)
            except Exception:  # noqa: BLE001
                pass
        cleanup()
        say(f"ui: {state['passed']} passed, 1 failed")
        return 1


if __name__ == '__main__':
    sys.exit(run())
