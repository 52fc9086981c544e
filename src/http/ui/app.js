// ringmq management UI: plain JS, no build step, no external resources.
// Talks to the RabbitMQ-compatible management API under api/ (relative to the
// page, so the UI also works behind a path prefix) with HTTP basic auth.
// Every server string reaches the page through textContent / attributes set
// with setAttribute (the h() helper): no innerHTML anywhere.
'use strict';
(() => {
  // ------------------------------------------------------------------ DOM
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (k === 'class') el.className = v;
        else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled') el[k] = v;
        else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
    return el;
  }
  function mount(el, ...children) {
    return append(el, children);
  }
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  // --------------------------------------------------------------- format
  const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const nf1 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const nf2 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  function fmtNum(n) {
    if (n === undefined || n === null || n === '') return '';
    if (typeof n !== 'number') return String(n);
    return nf0.format(n);
  }
  function fmtRate(r) {
    if (typeof r !== 'number') return '';
    return (r !== 0 && Math.abs(r) < 10 ? nf2.format(r) : nf1.format(r)) + '/s';
  }
  function rateOf(obj, key) {
    const d = get(obj, key + '_details');
    return d && typeof d.rate === 'number' ? d.rate : undefined;
  }
  function fmtBytes(n) {
    if (typeof n !== 'number') return '';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < u.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? nf0.format(n) : nf1.format(n)) + ' ' + u[i];
  }
  function fmtJson(v) {
    if (v === undefined || v === null) return '';
    if (typeof v === 'string') return v;
    if (isEmpty(v)) return '';
    return JSON.stringify(v);
  }
  function isEmpty(v) {
    return v === undefined || v === null || (typeof v === 'object' && Object.keys(v).length === 0);
  }
  function get(obj, path) {
    let o = obj;
    for (const k of path.split('.')) {
      if (o === null || o === undefined) return undefined;
      o = o[k];
    }
    return o;
  }
  function tagList(tags) {
    if (Array.isArray(tags)) return tags.filter(Boolean);
    if (typeof tags === 'string') return tags.split(',').map((s) => s.trim()).filter(Boolean);
    return [];
  }

  // ----------------------------------------------------------------- auth
  const AUTH_KEY = 'ringmq.auth';
  const USER_KEY = 'ringmq.user';
  const VHOST_KEY = 'ringmq.vhost';
  function b64(s) {
    let bin = '';
    for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b);
    return btoa(bin);
  }
  const session = {
    auth: sessionStorage.getItem(AUTH_KEY),
    user: sessionStorage.getItem(USER_KEY) || '',
    tags: [],
    vhosts: [],
    vhost: sessionStorage.getItem(VHOST_KEY) || '', // '' = all
  };
  function hasTag(t) {
    return session.tags.includes('administrator') || session.tags.includes(t);
  }

  // ------------------------------------------------------------------ api
  class ApiError extends Error {
    constructor(status, error, reason) {
      super(`${status ? status + ' ' : ''}${error}${reason ? ': ' + reason : ''}`);
      this.status = status;
      this.error = error;
      this.reason = reason;
    }
  }
  // Tagged template: every substitution is percent-encoded ('/' -> %2F).
  function u(strings, ...vals) {
    let s = strings[0];
    for (let i = 0; i < vals.length; i++) s += encodeURIComponent(vals[i]) + strings[i + 1];
    return s;
  }
  async function api(method, path, opts = {}) {
    const headers = Object.assign({ Authorization: opts.auth || session.auth || '' }, opts.headers || {});
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (opts.body !== undefined) {
      if (typeof opts.body === 'string') init.body = opts.body;
      else init.body = JSON.stringify(opts.body);
      if (!headers['content-type']) headers['content-type'] = 'application/json';
    }
    let res;
    try {
      res = await fetch('api' + path, init);
    } catch (e) {
      throw new ApiError(0, 'network error', e.message);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (!res.ok) {
      let error = res.statusText || 'error';
      let reason = '';
      if (data && typeof data === 'object') {
        error = data.error || error;
        reason = typeof data.reason === 'string' ? data.reason : fmtJson(data.reason);
      } else if (typeof data === 'string') reason = data.slice(0, 500);
      const err = new ApiError(res.status, error, reason);
      if (res.status === 401 && !opts.login) {
        logout('Your session is no longer authorised: log in again.');
      }
      throw err;
    }
    return data;
  }
  function qs(params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
    const s = p.toString();
    return s ? '?' + s : '';
  }

  // --------------------------------------------------------------- toasts
  function toast(msg, kind = 'ok') {
    const box = $('#toasts');
    const t = h('div', { class: 'toast ' + kind, role: kind === 'error' ? 'alert' : 'status' },
      h('span', null, msg),
      h('button', { type: 'button', class: 'link close', 'aria-label': 'Dismiss', onclick: () => t.remove() }, '×'));
    box.appendChild(t);
    if (kind !== 'error') setTimeout(() => t.remove(), 4000);
    while (box.children.length > 5) box.firstChild.remove();
  }
  function showError(e, prefix) {
    if (e && e.status === 401) return; // handled by logout()
    toast((prefix ? prefix + ': ' : '') + (e && e.message ? e.message : String(e)), 'error');
  }
  // Run an action from a form or button: disable while it runs, report errors.
  async function act(btn, fn, prefix) {
    if (btn) btn.disabled = true;
    try {
      return await fn();
    } catch (e) {
      showError(e, prefix);
      return undefined;
    } finally {
      if (btn) btn.disabled = false;
    }
  }
  function parseJsonField(text, what) {
    const t = (text || '').trim();
    if (!t) return {};
    let v;
    try {
      v = JSON.parse(t);
    } catch (e) {
      throw new Error(`${what} is not valid JSON: ${e.message}`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what} must be a JSON object`);
    return v;
  }

  // --------------------------------------------------------------- widgets
  function field(label, input, hint) {
    return h('label', { class: 'field' }, h('span', { class: 'lbl' }, label), input, hint ? h('small', { class: 'muted' }, hint) : null);
  }
  function vhostSelect(name = 'vhost', selected) {
    const sel = h('select', { name });
    const cur = selected !== undefined ? selected : session.vhost || '/';
    const list = session.vhosts.length ? session.vhosts : ['/'];
    for (const v of list) sel.appendChild(h('option', { value: v, selected: v === cur }, v));
    return sel;
  }
  function options(values, selected) {
    return values.map((v) => {
      const [val, text] = Array.isArray(v) ? v : [v, v];
      return h('option', { value: val, selected: val === selected }, text);
    });
  }
  function kv(rows) {
    // rows: [label, value] with value a string/Node; empty values skipped
    const tb = h('tbody');
    for (const [k, v] of rows) {
      if (v === undefined || v === null || v === '') continue;
      tb.appendChild(h('tr', null, h('th', null, k), h('td', null, v)));
    }
    return h('table', { class: 'kv' }, tb);
  }
  function link(href, text, cls) {
    return h('a', { href, class: cls }, text);
  }
  function qHref(vhost, name) {
    return '#/' + u`queues/${vhost}/${name}`;
  }
  function xHref(vhost, name) {
    return '#/' + u`exchanges/${vhost}/${name === '' ? 'amq.default' : name}`;
  }
  function chHref(name) {
    return '#/' + u`channels/${name}`;
  }
  function xName(name) {
    return name === '' ? '(AMQP default)' : name;
  }
  function apiX(name) {
    return name === '' ? 'amq.default' : name;
  }
  function badge(text, title, cls = '') {
    return h('abbr', { class: 'badge ' + cls, title }, text);
  }
  function features(o) {
    const out = [];
    if (o.durable) out.push(badge('D', 'durable'));
    if (o.auto_delete) out.push(badge('AD', 'auto-delete'));
    if (o.exclusive) out.push(badge('Excl', 'exclusive'));
    if (o.internal) out.push(badge('I', 'internal'));
    if (!isEmpty(o.arguments)) out.push(badge('Args', fmtJson(o.arguments), 'args'));
    return out;
  }
  // A used/total bar (file descriptors, sockets, memory against its limit);
  // red while the resource's alarm is in effect.
  function meter(used, total, alarm) {
    const pct = typeof used === 'number' && total > 0 ? Math.min(100, (used / total) * 100) : 0;
    return h('span', { class: 'meter' + (alarm ? ' alarm' : pct >= 80 ? ' high' : ''), title: nf1.format(pct) + '%' },
      h('span', { style: { width: pct + '%' } }));
  }
  function fmtUptime(ms) {
    if (typeof ms !== 'number') return '';
    const s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${hh}h`;
    if (hh) return `${hh}h ${m}m`;
    return m ? `${m}m ${s % 60}s` : `${s}s`;
  }
  // The resource alarms in effect on a node (/api/nodes), as RabbitMQ names them.
  function nodeAlarms(n) {
    const out = [];
    if (n.mem_alarm) out.push({ name: 'memory', text: `memory alarm: ${fmtBytes(n.mem_used)} used, limit ${fmtBytes(n.mem_limit)}` });
    if (n.disk_free_alarm) out.push({ name: 'disk', text: `disk alarm: ${fmtBytes(n.disk_free)} free, limit ${fmtBytes(n.disk_free_limit)}` });
    return out;
  }
  // Every alarm of every node, one line each.
  function alarmTexts(nodes) {
    return (nodes || []).flatMap((n) => nodeAlarms(n).map((x) => `${n.name}: ${x.text}`));
  }
  function alarmBadges(n) {
    const a = nodeAlarms(n);
    if (!a.length) return badge('no alarms', 'memory and free disk are within their limits', 'ok');
    return a.map((x) => badge(x.name + ' alarm', x.text + ': publishers are blocked', 'alarm'));
  }
  function section(title, ...body) {
    return h('section', { class: 'card' }, title ? h('h2', null, title) : null, ...body);
  }
  function collapsible(title, open, ...body) {
    return h('details', { class: 'card', open }, h('summary', null, title), h('div', { class: 'body' }, ...body));
  }
  function propsView(props) {
    if (!props || isEmpty(props)) return h('span', { class: 'muted' }, 'none');
    const tb = h('tbody');
    for (const [k, v] of Object.entries(props)) {
      tb.appendChild(h('tr', null, h('th', null, k), h('td', null, typeof v === 'object' ? JSON.stringify(v) : String(v))));
    }
    return h('table', { class: 'kv small' }, tb);
  }

  // --------------------------------------------------- sortable data table
  // columns: [{label, sort?: 'dotted.path', render(row) -> Node|string, cls?}]
  function dataTable(columns, state, onSort, opts = {}) {
    const thead = h('thead');
    const tbody = h('tbody');
    const table = h('table', { class: 'data' + (opts.cls ? ' ' + opts.cls : '') }, thead, tbody);
    function header() {
      const tr = h('tr');
      for (const c of columns) {
        if (c.sort) {
          const active = state.sort === c.sort;
          const th = h('th', { class: (c.cls || '') + ' sortable', 'aria-sort': active ? (state.reverse ? 'descending' : 'ascending') : 'none' },
            h('button', {
              type: 'button', class: 'link', title: 'Sort by ' + c.label,
              onclick: () => {
                if (state.sort === c.sort) state.reverse = !state.reverse;
                else {
                  state.sort = c.sort;
                  state.reverse = !!c.numeric; // big numbers first
                }
                header();
                onSort();
              },
            }, c.label, active ? (state.reverse ? ' ▼' : ' ▲') : ''));
          tr.appendChild(th);
        } else tr.appendChild(h('th', { class: c.cls || '' }, c.label));
      }
      thead.replaceChildren(tr);
    }
    header();
    return {
      el: table,
      setRows(rows, emptyText = 'Nothing to show.') {
        if (!rows.length) {
          tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, emptyText)));
          return;
        }
        const frag = document.createDocumentFragment();
        for (const r of rows) {
          const tr = h('tr', opts.rowAttrs ? opts.rowAttrs(r) : null);
          for (const c of columns) {
            const v = c.render ? c.render(r) : get(r, c.sort);
            tr.appendChild(h('td', { class: c.cls || '' }, v));
          }
          frag.appendChild(tr);
        }
        tbody.replaceChildren(frag);
      },
    };
  }
  function clientSort(rows, key, reverse) {
    if (!key) return rows;
    const dir = reverse ? -1 : 1;
    return rows.slice().sort((a, b) => {
      const x = get(a, key);
      const y = get(b, key);
      if (typeof x === 'number' || typeof y === 'number') return ((x || 0) - (y || 0)) * dir;
      return String(x ?? '').localeCompare(String(y ?? '')) * dir;
    });
  }

  // ------------------------------------------ list view (search, paging)
  const listStates = {};
  // spec: {key, title, path(vhost) -> api path, paged, columns, defaultSort,
  //        searchable, rowAttrs, emptyText, perVhost, filterText, filterLabel}
  // If the server answers a plain array (it ignored the paging parameters),
  // filtering, sorting and paging are done here: the filter matches any of
  // filterText(row) (default: the name).
  function listView(spec) {
    const st = (listStates[spec.key] ||= {
      name: '', regex: false, page: 1, pageSize: 50, sort: spec.defaultSort || 'name', reverse: false,
    });
    let timer = null;
    const count = h('span', { class: 'count muted' });
    const search = h('input', {
      type: 'search', name: 'filter', placeholder: spec.filterLabel || 'Filter by name', value: st.name, 'aria-label': spec.filterLabel || 'Filter by name',
      oninput: () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          st.name = search.value;
          st.page = 1;
          refresh();
        }, 250);
      },
    });
    const regex = h('input', { type: 'checkbox', name: 'regex', checked: st.regex, onchange: () => { st.regex = regex.checked; st.page = 1; refresh(); } });
    const sizeSel = h('select', { name: 'page_size', 'aria-label': 'Page size', onchange: () => { st.pageSize = Number(sizeSel.value); st.page = 1; refresh(); } },
      options([20, 50, 100, 500].map((n) => [String(n), n + ' per page']), String(st.pageSize)));
    const table = dataTable(spec.columns, st, () => refresh(), { rowAttrs: spec.rowAttrs });
    const prev = h('button', { type: 'button', class: 'small', onclick: () => { st.page--; refresh(); } }, '‹ Prev');
    const next = h('button', { type: 'button', class: 'small', onclick: () => { st.page++; refresh(); } }, 'Next ›');
    const pageInfo = h('span', { class: 'muted' });
    const pager = h('div', { class: 'pager' }, prev, pageInfo, next);
    const err = h('div', { class: 'inline-error', hidden: true });
    const toolbar = h('div', { class: 'toolbar' },
      spec.searchable !== false ? [search, h('label', { class: 'check' }, regex, ' Regex')] : null,
      h('span', { class: 'grow' }),
      sizeSel,
      h('button', { type: 'button', class: 'small', name: 'refresh', onclick: () => refresh() }, 'Refresh'));
    const el = section(null, h('div', { class: 'list-head' }, h('h2', null, spec.title), count), toolbar, err,
      h('div', { class: 'scroll' }, table.el), pager);
    el.id = 'list-' + spec.key;

    let seq = 0;
    async function refresh() {
      const my = ++seq;
      const vhost = spec.perVhost === false ? '' : session.vhost;
      let path = spec.path(vhost);
      if (spec.paged) {
        path += qs({
          page: st.page, page_size: st.pageSize, name: st.name, use_regex: st.name ? st.regex : undefined,
          sort: st.sort, sort_reverse: st.reverse, pagination: true,
        });
      }
      let reply;
      try {
        reply = await api('GET', path);
      } catch (e) {
        if (my !== seq) return;
        if (e.status === 400 && st.page > 1) {
          // page out of range after deletions: back to the first page
          st.page = 1;
          return refresh();
        }
        err.textContent = e.message;
        err.hidden = false;
        return;
      }
      if (my !== seq) return;
      err.hidden = true;
      let items, page, pageCount, filtered, total;
      if (Array.isArray(reply)) {
        total = reply.length;
        let rows = reply;
        if (st.name) {
          let test;
          if (st.regex) {
            try {
              const re = new RegExp(st.name);
              test = (s) => re.test(s);
            } catch (e) {
              err.textContent = 'Invalid regex: ' + e.message;
              err.hidden = false;
              return;
            }
          } else {
            const needle = st.name.toLowerCase();
            test = (s) => String(s).toLowerCase().includes(needle);
          }
          rows = rows.filter((r) => (spec.filterText ? spec.filterText(r) : [r.name ?? '']).some((t) => test(t ?? '')));
        }
        rows = clientSort(rows, st.sort, st.reverse);
        filtered = rows.length;
        pageCount = Math.max(1, Math.ceil(filtered / st.pageSize));
        if (st.page > pageCount) st.page = pageCount;
        page = st.page;
        items = rows.slice((page - 1) * st.pageSize, page * st.pageSize);
      } else {
        items = reply.items || [];
        page = reply.page || st.page;
        pageCount = reply.page_count || 0;
        filtered = reply.filtered_count ?? items.length;
        total = reply.total_count ?? filtered;
        if (pageCount > 0 && st.page > pageCount) {
          st.page = pageCount;
          return refresh();
        }
      }
      table.setRows(items, st.name ? 'No matches.' : spec.emptyText || 'Nothing to show.');
      count.textContent = filtered === total ? `(${fmtNum(total)})` : `(${fmtNum(filtered)} of ${fmtNum(total)})`;
      const pc = Math.max(1, pageCount);
      pageInfo.textContent = `Page ${page} of ${pc}`;
      prev.disabled = page <= 1;
      next.disabled = page >= pc;
      pager.hidden = pc <= 1;
      if (spec.onData) spec.onData(items);
    }
    return { el, refresh, state: st };
  }

  // ----------------------------------------------------------- line chart
  const COLORS = ['#2f6fdf', '#e2861a', '#2ea26b', '#c8435b', '#8a5cd0', '#7a8794'];
  function niceCeil(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function chart(title, seriesDefs, fmt, integral) {
    const canvas = h('canvas', { class: 'chart', role: 'img', 'aria-label': title });
    const legend = h('div', { class: 'legend' });
    const el = h('div', { class: 'chart-box' }, h('h3', null, title), canvas, legend);
    let last = [];
    function draw(samples) {
      last = samples;
      const dpr = window.devicePixelRatio || 1;
      const w = canvas.clientWidth || 400;
      const ht = canvas.clientHeight || 160;
      if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(ht * dpr)) {
        canvas.width = Math.round(w * dpr);
        canvas.height = Math.round(ht * dpr);
      }
      const ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, ht);
      const padL = 56, padR = 10, padT = 8, padB = 20;
      const pw = w - padL - padR, ph = ht - padT - padB;
      const now = samples.length ? samples[samples.length - 1].t : Date.now();
      const t0 = Math.min(now - 60000, samples.length ? samples[0].t : now);
      let ymax = 0;
      for (const s of samples) for (const d of seriesDefs) ymax = Math.max(ymax, s[d.key] || 0);
      // four grid steps of a "nice" size; whole steps for counts
      let step = niceCeil(Math.max(ymax, 1) / 4);
      if (integral) step = Math.max(1, Math.ceil(step));
      ymax = step * 4;
      const X = (t) => padL + ((t - t0) / (now - t0 || 1)) * pw;
      const Y = (v) => padT + ph - (v / ymax) * ph;
      ctx.font = '11px system-ui, sans-serif';
      ctx.lineWidth = 1;
      ctx.strokeStyle = '#e3e7ec';
      ctx.fillStyle = '#6b7785';
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      for (let i = 0; i <= 4; i++) {
        const v = (ymax * i) / 4;
        const y = Math.round(Y(v)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(padL, y);
        ctx.lineTo(padL + pw, y);
        ctx.stroke();
        ctx.fillText(fmt(v), padL - 6, y);
      }
      ctx.textBaseline = 'top';
      ctx.textAlign = 'left';
      const span = now - t0;
      ctx.fillText('-' + fmtSpan(span), padL, padT + ph + 5);
      ctx.textAlign = 'right';
      ctx.fillText('now', padL + pw, padT + ph + 5);
      if (samples.length < 2) {
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.fillText(samples.length ? 'collecting samples…' : 'no data yet', padL + pw / 2, padT + ph / 2);
      }
      // last series first, so the first ones stay on top where lines overlap
      seriesDefs.slice().reverse().forEach((d, ri) => {
        const i = seriesDefs.length - 1 - ri;
        const color = COLORS[i % COLORS.length];
        ctx.strokeStyle = color;
        ctx.lineWidth = d.dash ? 1.4 : 1.8;
        ctx.setLineDash(d.dash ? [5, 4] : []);
        ctx.lineJoin = 'round';
        ctx.beginPath();
        let started = false;
        for (const s of samples) {
          const v = s[d.key];
          if (typeof v !== 'number') {
            started = false;
            continue;
          }
          if (!started) ctx.moveTo(X(s.t), Y(v));
          else ctx.lineTo(X(s.t), Y(v));
          started = true;
        }
        ctx.stroke();
        ctx.setLineDash([]);
        if (samples.length === 1 && typeof samples[0][d.key] === 'number') {
          ctx.fillStyle = color;
          ctx.beginPath();
          ctx.arc(X(samples[0].t), Y(samples[0][d.key]), 2.5, 0, Math.PI * 2);
          ctx.fill();
        }
      });
      const cur = samples[samples.length - 1] || {};
      legend.replaceChildren(...seriesDefs.map((d, i) =>
        h('span', { class: 'item' }, h('i', { class: 'swatch', style: { background: COLORS[i % COLORS.length] } }), d.label + ' ',
          h('b', null, typeof cur[d.key] === 'number' ? fmt(cur[d.key]) : '–'))));
    }
    return { el, draw, redraw: () => draw(last) };
  }
  function fmtSpan(ms) {
    const s = Math.round(ms / 1000);
    if (s < 120) return s + 's';
    return Math.round(s / 60) + 'm';
  }

  // ------------------------------------------- overview poller + history
  const HISTORY_MAX_MS = 10 * 60 * 1000;
  const POLL_MS = 5000;
  const RATE_KEYS = ['publish', 'confirm', 'deliver_get', 'ack', 'redeliver', 'get'];
  const overview = {
    data: null,
    nodes: null, // /api/nodes, for users who may read it (alarms in the header and overview)
    history: [],
    listeners: new Set(),
    timer: null,
    async poll() {
      if (!session.auth) return;
      try {
        const [d, nodes] = await Promise.all([
          api('GET', '/overview'),
          hasTag('monitoring') ? api('GET', '/nodes').catch(() => null) : null,
        ]);
        this.data = d;
        this.nodes = Array.isArray(nodes) ? nodes : null;
        this.record(d);
        updateHeader(d);
        updateAlarms(this.nodes);
        for (const f of this.listeners) f(d, null);
      } catch (e) {
        for (const f of this.listeners) f(null, e);
      }
    },
    record(d) {
      const t = Date.now();
      const ms = d.message_stats || {};
      const qt = d.queue_totals || {};
      const prev = this.history[this.history.length - 1];
      const s = { t, messages: qt.messages ?? 0, ready: qt.messages_ready ?? 0, unacked: qt.messages_unacknowledged ?? 0 };
      s.counters = {};
      for (const k of RATE_KEYS) {
        const r = rateOf(ms, k);
        s.counters[k] = ms[k];
        if (typeof r === 'number') s[k] = r;
        else if (prev && typeof ms[k] === 'number' && typeof prev.counters[k] === 'number' && t > prev.t) {
          // server gave counters but no rate: derive one from two samples
          s[k] = Math.max(0, (ms[k] - prev.counters[k]) / ((t - prev.t) / 1000));
        } else s[k] = 0;
      }
      this.history.push(s);
      while (this.history.length && this.history[0].t < t - HISTORY_MAX_MS) this.history.shift();
    },
    start() {
      this.stop();
      this.poll();
      this.timer = setInterval(() => {
        if (!document.hidden) this.poll();
      }, POLL_MS);
    },
    stop() {
      clearInterval(this.timer);
      this.timer = null;
    },
  };
  function updateHeader(d) {
    const name = d.product_name || 'ringmq';
    const ver = d.product_version || d.rabbitmq_version || '';
    const el = $('#product');
    el.textContent = ` ${name === 'ringmq' ? '' : name + ' '}${ver}`;
    el.title = [d.cluster_name && 'cluster ' + d.cluster_name, d.node && 'node ' + d.node].filter(Boolean).join(', ');
  }

  // A red badge on the Nodes link while any node has an alarm, seen from every page.
  function updateAlarms(nodes) {
    const a = $('#nav a[data-route=nodes]');
    const alarms = alarmTexts(nodes);
    let b = $('.badge', a);
    if (!alarms.length) {
      if (b) b.remove();
      return;
    }
    if (!b) a.appendChild((b = badge('alarm', '', 'alarm')));
    b.title = alarms.join('\n');
  }

  // ---------------------------------------------------------------- pages
  function pageTitle(text, ...extra) {
    return h('div', { class: 'page-title' }, h('h1', null, text), ...extra);
  }

  // ---- Overview
  function overviewPage(main) {
    const totals = h('div', { class: 'tiles' });
    const rates = chart('Message rates', [
      { key: 'publish', label: 'Publish' },
      { key: 'confirm', label: 'Confirm' },
      { key: 'deliver_get', label: 'Deliver / get' },
      { key: 'ack', label: 'Ack' },
      { key: 'redeliver', label: 'Redeliver' },
    ], fmtRate);
    const depth = chart('Queued messages', [
      { key: 'ready', label: 'Ready' },
      { key: 'unacked', label: 'Unacked' },
      { key: 'messages', label: 'Total', dash: true },
    ], fmtNum, true);
    const nodeInfo = h('div');
    const listeners = dataTable([
      { label: 'Protocol', render: (l) => l.protocol },
      { label: 'Bound to', render: (l) => l.ip_address },
      { label: 'Port', render: (l) => String(l.port), cls: 'num' },
    ], {}, () => {});
    const err = h('div', { class: 'inline-error', hidden: true });
    const alarmBox = h('div', { id: 'alarms', class: 'alarm-banner', role: 'alert', hidden: true });
    mount(main, 
      pageTitle('Overview', h('span', { class: 'muted small' }, 'refreshes every 5 s')),
      err,
      alarmBox,
      totals,
      section(null, h('div', { class: 'charts' }, depth.el, rates.el)),
      h('div', { class: 'cols' }, section('Node', nodeInfo), section('Listeners', listeners.el)));
    function tile(label, value, href) {
      const inner = [h('div', { class: 'v' }, value), h('div', { class: 'l' }, label)];
      return href ? h('a', { class: 'tile', href }, inner) : h('div', { class: 'tile' }, inner);
    }
    function render(d, e) {
      if (e) {
        err.textContent = e.message;
        err.hidden = false;
        return;
      }
      err.hidden = true;
      const ot = d.object_totals || {};
      const qt = d.queue_totals || {};
      totals.replaceChildren(
        tile('Connections', fmtNum(ot.connections ?? 0), '#/connections'),
        tile('Channels', fmtNum(ot.channels ?? 0), '#/channels'),
        tile('Exchanges', fmtNum(ot.exchanges ?? 0), '#/exchanges'),
        tile('Queues', fmtNum(ot.queues ?? 0), '#/queues'),
        tile('Consumers', fmtNum(ot.consumers ?? 0)),
        tile('Ready', fmtNum(qt.messages_ready ?? 0)),
        tile('Unacked', fmtNum(qt.messages_unacknowledged ?? 0)),
        tile('Total messages', fmtNum(qt.messages ?? 0)));
      depth.draw(overview.history);
      rates.draw(overview.history);
      const nodes = overview.nodes || [];
      const alarms = alarmTexts(nodes);
      alarmBox.replaceChildren(h('b', null, 'Resource alarm in effect: publishers are blocked. '), link('#/nodes', 'Nodes'),
        h('ul', null, alarms.map((t) => h('li', null, t))));
      alarmBox.hidden = !alarms.length;
      const node = nodes.find((n) => n.name === d.node) || nodes[0];
      nodeInfo.replaceChildren(kv([
        ['Product', [d.product_name, d.product_version].filter(Boolean).join(' ')],
        ['Management API', d.management_version],
        ['Cluster', d.cluster_name],
        ['Node', node ? link('#/nodes', d.node) : d.node],
        ...(node ? [
          ['Alarms', h('span', { id: 'node-alarms' }, alarmBadges(node))],
          ['Memory', memoryCell(node)],
          ['Disk free', diskCell(node)],
          ['Uptime', fmtUptime(node.uptime)],
        ] : []),
        ['Rates mode', d.rates_mode],
        ['Runtime', d.erlang_version && d.erlang_version !== 'none' ? 'Erlang ' + d.erlang_version : ''],
      ]));
      listeners.setRows(d.listeners || [], 'No listeners reported.');
    }
    if (overview.data) render(overview.data);
    overview.listeners.add(render);
    const ro = new ResizeObserver(() => {
      rates.redraw();
      depth.redraw();
    });
    ro.observe(main);
    return {
      refresh: () => overview.poll(),
      interval: 0, // the global poller drives this page
      dispose() {
        overview.listeners.delete(render);
        ro.disconnect();
      },
    };
  }

  // ---- Nodes
  function memoryCell(n) {
    return h('span', { class: 'usage' }, meter(n.mem_used, n.mem_limit, n.mem_alarm), h('span', null, `${fmtBytes(n.mem_used)} of ${fmtBytes(n.mem_limit)} limit`));
  }
  function diskCell(n) {
    return h('span', { class: 'usage' + (n.disk_free_alarm ? ' alarm-text' : '') }, `${fmtBytes(n.disk_free)} free, limit ${fmtBytes(n.disk_free_limit)}`);
  }
  function countCell(used, total) {
    return typeof used === 'number' ? h('span', { class: 'usage' }, meter(used, total), h('span', null, `${fmtNum(used)} of ${fmtNum(total)}`)) : '';
  }
  function churn(n, key) {
    return typeof n[key] === 'number' ? `${fmtNum(n[key])} (${fmtRate(rateOf(n, key) ?? 0)})` : '';
  }
  function nodeDetails(n) {
    return h('div', { class: 'node', 'data-node': n.name },
      h('h2', { class: 'node-head' }, 'Node ', h('span', { class: 'obj-name' }, n.name)),
      h('div', { class: 'cols' },
        section('Resources', kv([
          ['Alarms', alarmBadges(n)],
          ['Memory', memoryCell(n)],
          ['Memory measured as', n.mem_calculation_strategy],
          ['Disk free', diskCell(n)],
          ['File descriptors', countCell(n.fd_used, n.fd_total)],
          ['Sockets', countCell(n.sockets_used, n.sockets_total)],
          ['Processors', fmtNum(n.processors)],
        ])),
        section('Churn (total and rate)', h('table', { class: 'kv', id: 'node-churn' }, h('tbody', null,
          [['Connections opened', 'connection_created'], ['Connections closed', 'connection_closed'],
            ['Channels opened', 'channel_created'], ['Channels closed', 'channel_closed'],
            ['Queues declared', 'queue_declared'], ['Queues created', 'queue_created'], ['Queues deleted', 'queue_deleted']]
            .map(([label, key]) => h('tr', null, h('th', null, label), h('td', { class: 'num', 'data-field': key }, churn(n, key))))))),
        section('Details', kv([
          ['Uptime', fmtUptime(n.uptime)],
          ['Type', [n.type, n.running === false ? ' (not running)' : ''].join('')],
          ['OS process id', n.os_pid],
          ['Data directory', n.db_dir],
          ['Log', (n.log_files || []).join(', ')],
          ['Rates mode', n.rates_mode],
          ['Applications', (n.applications || []).map((a) => `${a.name} ${a.version}`).join(', ')],
        ]))));
  }
  function nodesPage(main) {
    const st = { sort: 'name', reverse: false };
    let rows = [];
    const t = dataTable([
      { label: 'Name', sort: 'name', cls: 'col-name', render: (n) => n.name },
      { label: 'Alarms', cls: 'col-alarms', render: alarmBadges },
      { label: 'Memory', sort: 'mem_used', numeric: true, render: memoryCell },
      { label: 'Disk free', sort: 'disk_free', numeric: true, render: diskCell },
      { label: 'File descriptors', sort: 'fd_used', numeric: true, render: (n) => countCell(n.fd_used, n.fd_total) },
      { label: 'Sockets', sort: 'sockets_used', numeric: true, render: (n) => countCell(n.sockets_used, n.sockets_total) },
      { label: 'Uptime', sort: 'uptime', numeric: true, cls: 'num', render: (n) => fmtUptime(n.uptime) },
    ], st, draw, { rowAttrs: (n) => ({ 'data-name': n.name }) });
    const details = h('div');
    mount(main, pageTitle('Nodes', h('span', { class: 'muted small' }, 'refreshes every 5 s')),
      section(null, h('div', { class: 'scroll' }, t.el)), details);
    function draw() {
      t.setRows(clientSort(rows, st.sort, st.reverse), 'No nodes.');
    }
    async function refresh() {
      try {
        rows = await api('GET', '/nodes');
      } catch (e) {
        showError(e);
        return;
      }
      draw();
      details.replaceChildren(...rows.map(nodeDetails));
      updateAlarms(rows);
    }
    return { refresh };
  }

  // ---- Queues
  function queuesPage(main) {
    const list = listView({
      key: 'queues', title: 'Queues', paged: true,
      path: (v) => (v ? u`/queues/${v}` : '/queues'),
      rowAttrs: (q) => ({ 'data-name': q.name, 'data-vhost': q.vhost }),
      emptyText: 'No queues.',
      columns: [
        session.vhost ? null : { label: 'Virtual host', sort: 'vhost', render: (q) => q.vhost },
        { label: 'Name', sort: 'name', cls: 'col-name', render: (q) => link(qHref(q.vhost, q.name), q.name) },
        { label: 'Type', sort: 'type', render: (q) => q.type || 'classic' },
        { label: 'Features', render: features },
        { label: 'Policy', sort: 'policy', render: (q) => [q.effective_policy_name || q.policy || '', q.operator_policy ? [' ', badge(q.operator_policy, 'operator policy', 'op')] : null] },
        { label: 'State', sort: 'state', cls: 'col-state', render: (q) => (q.state === 'paused' ? badge('paused', 'delivers nothing to consumers until resumed', 'warn') : q.state || '') },
        { label: 'Ready', sort: 'messages_ready', numeric: true, cls: 'num col-ready', render: (q) => fmtNum(q.messages_ready) },
        { label: 'Unacked', sort: 'messages_unacknowledged', numeric: true, cls: 'num col-unacked', render: (q) => fmtNum(q.messages_unacknowledged) },
        { label: 'Total', sort: 'messages', numeric: true, cls: 'num col-messages', render: (q) => fmtNum(q.messages) },
        { label: 'Incoming', sort: 'message_stats.publish_details.rate', numeric: true, cls: 'num', render: (q) => fmtRate(rateOf(q.message_stats, 'publish')) },
        { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', numeric: true, cls: 'num', render: (q) => fmtRate(rateOf(q.message_stats, 'deliver_get')) },
        { label: 'Ack', sort: 'message_stats.ack_details.rate', numeric: true, cls: 'num', render: (q) => fmtRate(rateOf(q.message_stats, 'ack')) },
        { label: 'Consumers', sort: 'consumers', numeric: true, cls: 'num', render: (q) => fmtNum(q.consumers) },
      ].filter(Boolean),
    });
    const form = h('form', { id: 'add-queue', class: 'grid-form' },
      field('Virtual host', vhostSelect()),
      field('Name', h('input', { name: 'name', required: true, autocomplete: 'off' })),
      field('Type', h('select', { name: 'type' }, options([['classic', 'Classic'], ['quorum', 'Quorum'], ['stream', 'Stream']], 'classic'))),
      field('Durability', h('select', { name: 'durable' }, options([['true', 'Durable'], ['false', 'Transient']], 'true'))),
      field('Auto delete', h('select', { name: 'auto_delete' }, options([['false', 'No'], ['true', 'Yes']], 'false'))),
      field('Arguments (JSON)', h('textarea', { name: 'arguments', rows: 2, placeholder: '{"x-max-length": 1000, "x-message-ttl": 60000}' })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add queue')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = form.elements;
      act(form.querySelector('button[type=submit]'), async () => {
        const args = parseJsonField(f.arguments.value, 'Arguments');
        if (f.type.value !== 'classic') args['x-queue-type'] = f.type.value;
        const name = f.name.value.trim();
        await api('PUT', u`/queues/${f.vhost.value}/${name}`, {
          body: { durable: f.durable.value === 'true', auto_delete: f.auto_delete.value === 'true', arguments: args },
        });
        toast(`Queue "${name}" declared.`);
        f.name.value = '';
        list.refresh();
      }, 'Add queue');
    });
    mount(main, pageTitle('Queues'), list.el, collapsible('Add a new queue', true, form));
    return { refresh: list.refresh };
  }

  function publishForm(id, vhost, exchange, routingKeyDefault, onDone) {
    const form = h('form', { id, class: 'grid-form' },
      field('Routing key', h('input', { name: 'routing_key', value: routingKeyDefault || '', autocomplete: 'off' })),
      field('Delivery mode', h('select', { name: 'delivery_mode' }, options([['1', '1 – non-persistent'], ['2', '2 – persistent']], '1'))),
      field('Headers (JSON)', h('textarea', { name: 'headers', rows: 2, placeholder: '{"x-trace": "abc"}' })),
      field('Properties (JSON)', h('textarea', { name: 'properties', rows: 2, placeholder: '{"content_type": "text/plain", "message_id": "m1"}' })),
      field('Payload encoding', h('select', { name: 'payload_encoding' }, options([['string', 'String'], ['base64', 'Base64']], 'string'))),
      h('label', { class: 'field wide' }, h('span', { class: 'lbl' }, 'Payload'), h('textarea', { name: 'payload', rows: 4 })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Publish message'),
        h('span', { class: 'result', 'aria-live': 'polite' })));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = form.elements;
      const result = form.querySelector('.result');
      result.textContent = '';
      result.className = 'result';
      act(form.querySelector('button[type=submit]'), async () => {
        const props = parseJsonField(f.properties.value, 'Properties');
        const headers = parseJsonField(f.headers.value, 'Headers');
        props.delivery_mode = Number(f.delivery_mode.value);
        if (!isEmpty(headers)) props.headers = headers;
        const r = await api('POST', u`/exchanges/${vhost}/${apiX(exchange)}/publish`, {
          body: { properties: props, routing_key: f.routing_key.value, payload: f.payload.value, payload_encoding: f.payload_encoding.value },
        });
        if (r && r.routed) {
          result.textContent = 'Message published and routed.';
          result.className = 'result ok';
        } else {
          result.textContent = 'Message published, but not routed (no matching binding).';
          result.className = 'result warn';
        }
        if (onDone) onDone(r);
      }, 'Publish');
    });
    return form;
  }

  function bindingArgsForm(id, fields, submitText, onSubmit) {
    const form = h('form', { id, class: 'grid-form' }, ...fields,
      field('Routing key', h('input', { name: 'routing_key', autocomplete: 'off' })),
      field('Arguments (JSON)', h('textarea', { name: 'arguments', rows: 1, placeholder: '{"x-match": "all"}' })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, submitText)));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(form.querySelector('button[type=submit]'), async () => {
        const args = parseJsonField(form.elements.arguments.value, 'Arguments');
        await onSubmit(form.elements, { routing_key: form.elements.routing_key.value, arguments: args });
        form.elements.routing_key.value = '';
        form.elements.arguments.value = '';
      }, submitText);
    });
    return form;
  }

  function notFound(main, what, e, back, name) {
    main.replaceChildren(pageTitle(what, name !== undefined ? h('span', { class: 'obj-name' }, name) : null),
      section(null, h('p', { class: 'inline-error' }, e.status === 404 ? `This ${what.toLowerCase()} does not exist (any more).` : e.message),
        h('p', null, link(back[0], back[1]))));
  }

  // ---- Queue detail
  function queuePage(main, [vhost, name]) {
    const base = u`/queues/${vhost}/${name}`;
    const stats = h('div', { class: 'cols' });
    const consumers = dataTable(consumerColumns({ channel: true, sortable: false }), {}, () => {});
    const bindings = dataTable([
      { label: 'From exchange', render: (b) => (b.source === '' ? h('span', { class: 'muted' }, '(Default exchange binding)') : link(xHref(b.vhost ?? vhost, b.source), b.source)) },
      { label: 'Routing key', render: (b) => b.routing_key },
      { label: 'Arguments', render: (b) => fmtJson(b.arguments) },
      {
        label: '', cls: 'act', render: (b) => (b.source === '' ? '' : h('button', {
          type: 'button', class: 'small danger',
          onclick: (ev) => act(ev.currentTarget, async () => {
            await api('DELETE', u`/bindings/${vhost}/e/${b.source}/q/${name}/${b.properties_key ?? propsKey(b)}`);
            toast('Binding removed.');
            refresh();
          }, 'Unbind'),
        }, 'Unbind')),
      },
    ], {}, () => {});
    const bindForm = bindingArgsForm('add-binding', [field('From exchange', h('input', { name: 'source', required: true, autocomplete: 'off' }))], 'Bind',
      async (f, body) => {
        await api('POST', u`/bindings/${vhost}/e/${f.source.value}/q/${name}`, { body });
        toast('Binding added.');
        refresh();
      });

    const getForm = h('form', { id: 'get-messages', class: 'grid-form' },
      field('Ack mode', h('select', { name: 'ackmode' }, options([
        ['ack_requeue_true', 'Nack, requeue true'], ['reject_requeue_true', 'Reject, requeue true'],
        ['ack_requeue_false', 'Automatic ack'], ['reject_requeue_false', 'Reject, requeue false'],
      ], 'ack_requeue_true'))),
      field('Encoding', h('select', { name: 'encoding' }, options([['auto', 'Auto string / base64'], ['base64', 'Base64']], 'auto'))),
      field('Messages', h('input', { name: 'count', type: 'number', min: 1, value: '1' })),
      field('Truncate at (bytes)', h('input', { name: 'truncate', type: 'number', min: 1, value: '50000' })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Get message(s)')));
    const gotMessages = h('div', { id: 'messages' });
    getForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = getForm.elements;
      act(getForm.querySelector('button[type=submit]'), async () => {
        const msgs = await api('POST', base + '/get', {
          body: { count: Number(f.count.value) || 1, ackmode: f.ackmode.value, encoding: f.encoding.value, truncate: Number(f.truncate.value) || 50000 },
        });
        renderMessages(gotMessages, msgs || []);
        refresh();
      }, 'Get messages');
    });

    const pub = publishForm('publish-to-queue', vhost, '', name, () => setTimeout(refresh, 300));
    const purgeBtn = h('button', {
      type: 'button', class: 'danger', name: 'purge',
      onclick: (ev) => {
        if (!confirm(`Purge all messages from queue "${name}"?`)) return;
        act(ev.currentTarget, async () => {
          await api('DELETE', base + '/contents');
          toast(`Queue "${name}" purged.`);
          refresh();
        }, 'Purge');
      },
    }, 'Purge messages');
    // Pause/resume: POST .../actions, which RabbitMQ's API has for queue
    // actions and which needs an administrator.
    const pauseBox = h('div', { class: 'toolbar', id: 'pause-queue' });
    function pauseButton(action, text) {
      return h('button', {
        type: 'button', name: action,
        onclick: (ev) => act(ev.currentTarget, async () => {
          await api('POST', base + '/actions', { body: { action } });
          toast(`Queue "${name}" ${action}d.`);
          refresh();
        }, text),
      }, text);
    }
    function drawPause(state) {
      const paused = state === 'paused';
      pauseBox.replaceChildren(h('span', null, 'State: ', h('b', { class: 'queue-state' }, state || 'unknown')),
        paused ? pauseButton('resume', 'Resume queue') : pauseButton('pause', 'Pause queue'));
    }
    const ifEmpty = h('input', { type: 'checkbox', name: 'if-empty' });
    const ifUnused = h('input', { type: 'checkbox', name: 'if-unused' });
    const deleteBtn = h('button', {
      type: 'button', class: 'danger', name: 'delete',
      onclick: (ev) => {
        if (!confirm(`Delete queue "${name}"?`)) return;
        act(ev.currentTarget, async () => {
          await api('DELETE', base + qs({ 'if-empty': ifEmpty.checked || undefined, 'if-unused': ifUnused.checked || undefined }));
          toast(`Queue "${name}" deleted.`);
          location.hash = '#/queues';
        }, 'Delete queue');
      },
    }, 'Delete queue');

    mount(main, 
      pageTitle('Queue ', h('span', { class: 'obj-name' }, name), h('span', { class: 'muted' }, ' in virtual host '), h('span', { class: 'obj-name muted' }, vhost)),
      stats,
      hasTag('administrator') ? section('Pause deliveries', h('p', { class: 'muted small' },
        'A paused queue keeps its messages and its consumers but delivers nothing to them until it is resumed.'), pauseBox) : null,
      section('Consumers', h('div', { class: 'scroll' }, consumers.el)),
      section('Bindings', h('div', { class: 'scroll' }, bindings.el), h('h3', null, 'Add binding to this queue'), bindForm),
      collapsible('Publish message', false, h('p', { class: 'muted small' }, 'Published through the default exchange with the queue name as routing key.'), pub),
      collapsible('Get messages', true, h('p', { class: 'muted small' }, 'Getting messages is destructive unless requeued; requeued messages are marked redelivered.'), getForm, gotMessages),
      section('Danger zone', h('div', { class: 'toolbar' }, purgeBtn, h('span', { class: 'grow' }),
        h('label', { class: 'check' }, ifEmpty, ' if empty'), h('label', { class: 'check' }, ifUnused, ' if unused'), deleteBtn)));

    let gone = false;
    async function refresh() {
      if (gone) return;
      let q, b;
      try {
        [q, b] = await Promise.all([api('GET', base), api('GET', base + '/bindings')]);
      } catch (e) {
        if (e.status === 404) {
          gone = true;
          notFound(main, 'Queue', e, ['#/queues', 'Back to queues'], name);
        } else showError(e);
        return;
      }
      const ms = q.message_stats || {};
      stats.replaceChildren(
        section('Details', kv([
          ['Type', q.type || 'classic'],
          ['State', q.state === 'paused' ? badge('paused', 'delivers nothing to consumers until resumed', 'warn') : q.state],
          ['Features', features(q).length ? features(q) : h('span', { class: 'muted' }, 'none')],
          ['Arguments', isEmpty(q.arguments) ? '' : propsView(q.arguments)],
          ['Policy', q.effective_policy_name || q.policy || ''],
          ['Operator policy', q.operator_policy || ''],
          ['Effective policy definition', isEmpty(q.effective_policy_definition) ? '' : propsView(q.effective_policy_definition)],
          ['Exclusive owner', q.owner_pid_details && q.owner_pid_details.name ? link('#/' + u`connections/${q.owner_pid_details.name}`, q.owner_pid_details.name) : ''],
          ['Consumers', fmtNum(q.consumers ?? 0)],
          ['Consumer capacity', typeof q.consumer_capacity === 'number' ? Math.round(q.consumer_capacity * 100) + '%' : ''],
          ['Memory', fmtBytes(q.memory)],
        ])),
        section('Messages', h('table', { class: 'kv', id: 'queue-counts' }, h('tbody', null,
          h('tr', null, h('th', null, 'Ready'), h('td', { class: 'num', 'data-field': 'messages_ready' }, fmtNum(q.messages_ready ?? 0)), h('td', { class: 'num muted' }, fmtBytes(q.message_bytes_ready))),
          h('tr', null, h('th', null, 'Unacked'), h('td', { class: 'num', 'data-field': 'messages_unacknowledged' }, fmtNum(q.messages_unacknowledged ?? 0)), h('td', { class: 'num muted' }, fmtBytes(q.message_bytes_unacknowledged))),
          h('tr', null, h('th', null, 'Total'), h('td', { class: 'num', 'data-field': 'messages' }, fmtNum(q.messages ?? 0)), h('td', { class: 'num muted' }, fmtBytes(q.message_bytes)))))),
        section('Message rates', kv([
          ['Publish', fmtRate(rateOf(ms, 'publish') ?? 0)],
          ['Deliver / get', fmtRate(rateOf(ms, 'deliver_get') ?? 0)],
          ['Ack', fmtRate(rateOf(ms, 'ack') ?? 0)],
          ['Redeliver', fmtRate(rateOf(ms, 'redeliver') ?? 0)],
          ['Published (total)', fmtNum(ms.publish)],
          ['Delivered (total)', fmtNum(ms.deliver_get)],
        ])));
      drawPause(q.state);
      consumers.setRows(q.consumer_details || [], 'No consumers.');
      bindings.setRows(b || [], 'No bindings.');
    }
    return { refresh };
  }
  function propsKey(b) {
    // RabbitMQ: routing key (percent-encoded) when there are no arguments
    return isEmpty(b.arguments) ? b.routing_key || '~' : b.routing_key;
  }

  function renderMessages(box, msgs) {
    if (!msgs.length) {
      box.replaceChildren(h('p', { class: 'muted' }, 'Queue is empty.'));
      return;
    }
    box.replaceChildren(...msgs.map((m, i) => h('div', { class: 'message' },
      h('h3', null, `Message ${i + 1}`),
      h('p', { class: 'muted small' }, `${fmtNum(m.message_count)} message(s) remaining in queue`),
      kv([
        ['Exchange', xName(m.exchange ?? '')],
        ['Routing key', m.routing_key ?? ''],
        ['Redelivered', m.redelivered ? 'yes' : 'no'],
        ['Properties', propsView(Array.isArray(m.properties) ? {} : m.properties)],
        ['Payload', h('div', null,
          h('div', { class: 'muted small' }, `${fmtNum(m.payload_bytes)} bytes · encoding: ${m.payload_encoding}`),
          h('pre', { class: 'payload' }, m.payload ?? ''))],
      ]))));
  }

  // ---- Exchanges
  function exchangesPage(main) {
    const list = listView({
      key: 'exchanges', title: 'Exchanges', paged: true,
      path: (v) => (v ? u`/exchanges/${v}` : '/exchanges'),
      rowAttrs: (x) => ({ 'data-name': x.name, 'data-vhost': x.vhost }),
      emptyText: 'No exchanges.',
      columns: [
        session.vhost ? null : { label: 'Virtual host', sort: 'vhost', render: (x) => x.vhost },
        { label: 'Name', sort: 'name', cls: 'col-name', render: (x) => link(xHref(x.vhost, x.name), xName(x.name)) },
        { label: 'Type', sort: 'type', render: (x) => x.type },
        { label: 'Features', render: features },
        { label: 'Policy', sort: 'policy', render: (x) => x.policy || '' },
        { label: 'Rate in', sort: 'message_stats.publish_in_details.rate', numeric: true, cls: 'num', render: (x) => fmtRate(rateOf(x.message_stats, 'publish_in')) },
        { label: 'Rate out', sort: 'message_stats.publish_out_details.rate', numeric: true, cls: 'num', render: (x) => fmtRate(rateOf(x.message_stats, 'publish_out')) },
      ].filter(Boolean),
    });
    const types = ((overview.data && overview.data.exchange_types) || []).map((t) => t.name);
    const form = h('form', { id: 'add-exchange', class: 'grid-form' },
      field('Virtual host', vhostSelect()),
      field('Name', h('input', { name: 'name', required: true, autocomplete: 'off' })),
      field('Type', h('select', { name: 'type' }, options(types.length ? types : ['direct', 'fanout', 'topic', 'headers'], 'direct'))),
      field('Durability', h('select', { name: 'durable' }, options([['true', 'Durable'], ['false', 'Transient']], 'true'))),
      field('Auto delete', h('select', { name: 'auto_delete' }, options([['false', 'No'], ['true', 'Yes']], 'false'))),
      field('Internal', h('select', { name: 'internal' }, options([['false', 'No'], ['true', 'Yes']], 'false'))),
      field('Arguments (JSON)', h('textarea', { name: 'arguments', rows: 2, placeholder: '{"alternate-exchange": "ae"}' })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add exchange')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = form.elements;
      act(form.querySelector('button[type=submit]'), async () => {
        const name = f.name.value.trim();
        await api('PUT', u`/exchanges/${f.vhost.value}/${name}`, {
          body: {
            type: f.type.value, durable: f.durable.value === 'true', auto_delete: f.auto_delete.value === 'true',
            internal: f.internal.value === 'true', arguments: parseJsonField(f.arguments.value, 'Arguments'),
          },
        });
        toast(`Exchange "${name}" declared.`);
        f.name.value = '';
        list.refresh();
      }, 'Add exchange');
    });
    mount(main, pageTitle('Exchanges'), list.el, collapsible('Add a new exchange', true, form));
    return { refresh: list.refresh };
  }

  function exchangePage(main, [vhost, name]) {
    const base = u`/exchanges/${vhost}/${name}`;
    const isDefault = name === 'amq.default' || name === '';
    const xname = isDefault ? '' : name;
    const stats = h('div', { class: 'cols' });
    const unbindBtn = (path) => h('button', {
      type: 'button', class: 'small danger',
      onclick: (ev) => act(ev.currentTarget, async () => {
        await api('DELETE', path);
        toast('Binding removed.');
        refresh();
      }, 'Unbind'),
    }, 'Unbind');
    const src = dataTable([
      { label: 'To', render: (b) => (b.destination_type === 'queue' ? link(qHref(vhost, b.destination), b.destination) : link(xHref(vhost, b.destination), b.destination)) },
      { label: 'Type', render: (b) => b.destination_type },
      { label: 'Routing key', render: (b) => b.routing_key },
      { label: 'Arguments', render: (b) => fmtJson(b.arguments) },
      { label: '', cls: 'act', render: (b) => unbindBtn(u`/bindings/${vhost}/e/${xname}/${b.destination_type === 'queue' ? 'q' : 'e'}/${b.destination}/${b.properties_key ?? propsKey(b)}`) },
    ], {}, () => {});
    const dst = dataTable([
      { label: 'From', render: (b) => link(xHref(vhost, b.source), xName(b.source)) },
      { label: 'Routing key', render: (b) => b.routing_key },
      { label: 'Arguments', render: (b) => fmtJson(b.arguments) },
      { label: '', cls: 'act', render: (b) => unbindBtn(u`/bindings/${vhost}/e/${b.source}/e/${xname}/${b.properties_key ?? propsKey(b)}`) },
    ], {}, () => {});
    const bindForm = bindingArgsForm('add-exchange-binding', [
      field('To', h('select', { name: 'dtype' }, options([['q', 'Queue'], ['e', 'Exchange']], 'q'))),
      field('Destination name', h('input', { name: 'destination', required: true, autocomplete: 'off' })),
    ], 'Bind', async (f, body) => {
      await api('POST', u`/bindings/${vhost}/e/${xname}/${f.dtype.value}/${f.destination.value}`, { body });
      toast('Binding added.');
      refresh();
    });
    const pub = publishForm('publish', vhost, xname, '', () => {});
    const deleteBtn = h('button', {
      type: 'button', class: 'danger', name: 'delete',
      onclick: (ev) => {
        if (!confirm(`Delete exchange "${xName(xname)}"?`)) return;
        act(ev.currentTarget, async () => {
          await api('DELETE', base);
          toast(`Exchange "${xname}" deleted.`);
          location.hash = '#/exchanges';
        }, 'Delete exchange');
      },
    }, 'Delete exchange');
    mount(main, 
      pageTitle('Exchange ', h('span', { class: 'obj-name' }, xName(xname)), h('span', { class: 'muted' }, ' in virtual host '), h('span', { class: 'obj-name muted' }, vhost)),
      stats,
      isDefault
        ? section('Bindings', h('p', { class: 'muted' }, 'The default exchange is implicitly bound to every queue, with a routing key equal to the queue name. Binding to or from it is not allowed.'))
        : section('Bindings', h('h3', null, 'This exchange → destinations'), h('div', { class: 'scroll' }, src.el),
          h('h3', null, 'Sources → this exchange'), h('div', { class: 'scroll' }, dst.el),
          h('h3', null, 'Add binding from this exchange'), bindForm),
      collapsible('Publish message', true, pub),
      isDefault ? null : section('Danger zone', h('div', { class: 'toolbar' }, deleteBtn)));
    let gone = false;
    async function refresh() {
      if (gone) return;
      let x, s, d;
      try {
        [x, s, d] = await Promise.all([
          api('GET', base),
          isDefault ? [] : api('GET', base + '/bindings/source'),
          isDefault ? [] : api('GET', base + '/bindings/destination'),
        ]);
      } catch (e) {
        if (e.status === 404) {
          gone = true;
          notFound(main, 'Exchange', e, ['#/exchanges', 'Back to exchanges'], xName(xname));
        } else showError(e);
        return;
      }
      const ms = x.message_stats || {};
      stats.replaceChildren(
        section('Details', kv([
          ['Type', x.type],
          ['Features', features(x).length ? features(x) : h('span', { class: 'muted' }, 'none')],
          ['Arguments', isEmpty(x.arguments) ? '' : propsView(x.arguments)],
          ['Policy', x.policy || ''],
        ])),
        section('Message rates', kv([
          ['Publish (in)', fmtRate(rateOf(ms, 'publish_in') ?? 0)],
          ['Publish (out)', fmtRate(rateOf(ms, 'publish_out') ?? 0)],
          ['Published in (total)', fmtNum(ms.publish_in)],
          ['Published out (total)', fmtNum(ms.publish_out)],
        ])));
      src.setRows(s || [], 'No bindings.');
      dst.setRows(d || [], 'No bindings.');
    }
    return { refresh };
  }

  // ---- Connections
  function connColumns(withVhost) {
    return [
      withVhost ? { label: 'Virtual host', sort: 'vhost', render: (c) => c.vhost } : null,
      { label: 'Name', sort: 'name', cls: 'col-name', render: (c) => link('#/' + u`connections/${c.name}`, c.name) },
      { label: 'User', sort: 'user', render: (c) => c.user },
      { label: 'State', sort: 'state', render: (c) => c.state },
      { label: 'Protocol', sort: 'protocol', render: (c) => c.protocol },
      { label: 'TLS', render: (c) => (c.ssl ? 'yes' : '') },
      { label: 'Client', render: (c) => clientName(c.client_properties) },
      { label: 'Channels', sort: 'channels', numeric: true, cls: 'num', render: (c) => fmtNum(c.channels) },
      { label: 'From client', sort: 'recv_oct_details.rate', numeric: true, cls: 'num', render: (c) => fmtBytesRate(rateOf(c, 'recv_oct')) },
      { label: 'To client', sort: 'send_oct_details.rate', numeric: true, cls: 'num', render: (c) => fmtBytesRate(rateOf(c, 'send_oct')) },
    ].filter(Boolean);
  }
  function fmtBytesRate(r) {
    return typeof r === 'number' ? fmtBytes(r) + '/s' : '';
  }
  function clientName(p) {
    if (!p) return '';
    return [p.product, p.version].filter((x) => typeof x === 'string' && x).join(' ') || p.connection_name || '';
  }
  function connectionsPage(main) {
    const list = listView({
      key: 'connections', title: 'Connections', paged: true,
      path: (v) => (v ? u`/vhosts/${v}/connections` : '/connections'),
      rowAttrs: (c) => ({ 'data-name': c.name }),
      emptyText: 'No connections.',
      columns: connColumns(!session.vhost),
    });
    mount(main, pageTitle('Connections'), list.el);
    return { refresh: list.refresh };
  }
  function chanColumns(withConn) {
    return [
      { label: 'Channel', sort: 'name', cls: 'col-name', render: (c) => link(chHref(c.name), c.name) },
      withConn ? { label: 'Connection', render: (c) => (c.connection_details ? link('#/' + u`connections/${c.connection_details.name}`, c.connection_details.name) : '') } : null,
      { label: 'Virtual host', sort: 'vhost', render: (c) => c.vhost },
      { label: 'User', sort: 'user', render: (c) => c.user },
      { label: 'Mode', render: (c) => [c.confirm ? badge('C', 'confirm mode') : null, c.transactional ? badge('T', 'transactional') : null] },
      { label: 'State', sort: 'state', render: (c) => c.state },
      { label: 'Prefetch', sort: 'prefetch_count', numeric: true, cls: 'num', render: (c) => fmtNum(c.prefetch_count) },
      { label: 'Unacked', sort: 'messages_unacknowledged', numeric: true, cls: 'num', render: (c) => fmtNum(c.messages_unacknowledged) },
      { label: 'Unconfirmed', sort: 'messages_unconfirmed', numeric: true, cls: 'num', render: (c) => fmtNum(c.messages_unconfirmed) },
      { label: 'Consumers', sort: 'consumer_count', numeric: true, cls: 'num', render: (c) => fmtNum(c.consumer_count) },
      { label: 'Publish', sort: 'message_stats.publish_details.rate', numeric: true, cls: 'num', render: (c) => fmtRate(rateOf(c.message_stats, 'publish')) },
      { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', numeric: true, cls: 'num', render: (c) => fmtRate(rateOf(c.message_stats, 'deliver_get')) },
      { label: 'Ack', sort: 'message_stats.ack_details.rate', numeric: true, cls: 'num', render: (c) => fmtRate(rateOf(c.message_stats, 'ack')) },
    ].filter(Boolean);
  }
  function channelsPage(main) {
    const list = listView({
      key: 'channels', title: 'Channels', paged: true,
      path: (v) => (v ? u`/vhosts/${v}/channels` : '/channels'),
      rowAttrs: (c) => ({ 'data-name': c.name }),
      emptyText: 'No channels.',
      columns: chanColumns(true),
    });
    mount(main, pageTitle('Channels'), list.el);
    return { refresh: list.refresh };
  }
  function connectionPage(main, [name]) {
    const base = u`/connections/${name}`;
    const info = h('div', { class: 'cols' });
    const chState = { sort: 'name', reverse: false };
    let chRows = [];
    const chans = dataTable(chanColumns(false), chState, () => chans.setRows(clientSort(chRows, chState.sort, chState.reverse), 'No channels.'));
    const reason = h('input', { name: 'reason', value: 'Closed via management UI', autocomplete: 'off' });
    const closeForm = h('form', { id: 'close-connection', class: 'toolbar' }, field('Reason', reason),
      h('button', { type: 'submit', class: 'danger' }, 'Force close'));
    closeForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!confirm(`Close connection "${name}"?`)) return;
      act(closeForm.querySelector('button'), async () => {
        await api('DELETE', base, { headers: { 'X-Reason': reason.value } });
        toast('Connection closed.');
        location.hash = '#/connections';
      }, 'Close connection');
    });
    mount(main, pageTitle('Connection ', h('span', { class: 'obj-name' }, name)), info,
      section('Channels', h('div', { class: 'scroll' }, chans.el)), section('Close this connection', closeForm));
    let gone = false;
    async function refresh() {
      if (gone) return;
      let c;
      try {
        [c, chRows] = await Promise.all([api('GET', base), api('GET', base + '/channels').catch(() => [])]);
      } catch (e) {
        if (e.status === 404) {
          gone = true;
          notFound(main, 'Connection', e, ['#/connections', 'Back to connections'], name);
        } else showError(e);
        return;
      }
      info.replaceChildren(
        section('Details', kv([
          ['Virtual host', c.vhost], ['User', c.user], ['State', c.state], ['Protocol', c.protocol],
          ['Peer', c.peer_host !== undefined ? `${c.peer_host}:${c.peer_port}` : ''],
          ['Local', c.host !== undefined ? `${c.host}:${c.port}` : ''],
          ['Authentication', c.auth_mechanism], ['TLS', c.ssl ? 'yes' : 'no'],
          ['Channels', fmtNum(c.channels)], ['Channel max', fmtNum(c.channel_max)], ['Frame max', fmtNum(c.frame_max)],
          ['Heartbeat', typeof c.timeout === 'number' ? c.timeout + ' s' : ''],
          ['Connected at', typeof c.connected_at === 'number' ? new Date(c.connected_at).toLocaleString() : ''],
          ['From client', fmtBytesRate(rateOf(c, 'recv_oct'))], ['To client', fmtBytesRate(rateOf(c, 'send_oct'))],
        ])),
        section('Client properties', propsView(c.client_properties)));
      chans.setRows(clientSort(chRows || [], chState.sort, chState.reverse), 'No channels.');
    }
    return { refresh };
  }

  function channelPage(main, [name]) {
    const base = u`/channels/${name}`;
    const info = h('div', { class: 'cols' });
    const consumers = dataTable(consumerColumns({ queue: true, sortable: false }), {}, () => {});
    mount(main, pageTitle('Channel ', h('span', { class: 'obj-name' }, name)), info, section('Consumers', h('div', { class: 'scroll' }, consumers.el)));
    let gone = false;
    async function refresh() {
      if (gone) return;
      let c;
      try {
        c = await api('GET', base);
      } catch (e) {
        if (e.status === 404) {
          gone = true;
          notFound(main, 'Channel', e, ['#/channels', 'Back to channels'], name);
        } else showError(e);
        return;
      }
      const ms = c.message_stats || {};
      const conn = c.connection_details || {};
      info.replaceChildren(
        section('Details', kv([
          ['Connection', conn.name ? link('#/' + u`connections/${conn.name}`, conn.name) : ''],
          ['Virtual host', c.vhost], ['User', c.user], ['State', c.state], ['Number', fmtNum(c.number)],
          ['Mode', [c.confirm ? 'confirm' : null, c.transactional ? 'transactional' : null].filter(Boolean).join(', ') || 'normal'],
          ['Prefetch (per consumer)', fmtNum(c.prefetch_count)], ['Prefetch (channel)', fmtNum(c.global_prefetch_count)],
          ['Unacked', fmtNum(c.messages_unacknowledged)], ['Unconfirmed', fmtNum(c.messages_unconfirmed)],
          ['Uncommitted', fmtNum(c.messages_uncommitted)], ['Consumers', fmtNum(c.consumer_count)],
        ])),
        section('Message rates', kv([
          ['Publish', fmtRate(rateOf(ms, 'publish') ?? 0)], ['Confirm', fmtRate(rateOf(ms, 'confirm') ?? 0)],
          ['Deliver / get', fmtRate(rateOf(ms, 'deliver_get') ?? 0)], ['Ack', fmtRate(rateOf(ms, 'ack') ?? 0)],
          ['Redeliver', fmtRate(rateOf(ms, 'redeliver') ?? 0)],
        ])));
      consumers.setRows(c.consumer_details || [], 'No consumers.');
    }
    return { refresh };
  }

  // ---- Consumers
  // Consumer rows (/api/consumers, a queue's or a channel's consumer_details),
  // with the queue and channel columns where the page is not about them already.
  function consumerColumns({ vhost, queue, channel, sortable = true }) {
    const cols = [
      vhost ? { label: 'Virtual host', sort: 'queue.vhost', render: (c) => get(c, 'queue.vhost') } : null,
      queue ? { label: 'Queue', sort: 'queue.name', cls: 'col-name', render: (c) => (c.queue ? link(qHref(c.queue.vhost, c.queue.name), c.queue.name) : '') } : null,
      channel ? { label: 'Channel', sort: 'channel_details.name', render: (c) => (get(c, 'channel_details.name') ? link(chHref(c.channel_details.name), c.channel_details.name) : '') } : null,
      { label: 'Consumer tag', sort: 'consumer_tag', cls: 'col-tag', render: (c) => c.consumer_tag },
      { label: 'Ack mode', sort: 'ack_required', cls: 'col-ack', render: (c) => (c.ack_required ? 'manual ack' : 'automatic ack') },
      { label: 'Prefetch', sort: 'prefetch_count', numeric: true, cls: 'num col-prefetch', render: (c) => fmtNum(c.prefetch_count) },
      { label: 'Exclusive', sort: 'exclusive', render: (c) => (c.exclusive ? 'yes' : 'no') },
      { label: 'Active', sort: 'activity_status', cls: 'col-active', render: (c) => (c.active === false ? 'no' : 'yes') + (c.activity_status && c.activity_status !== 'up' ? ` (${c.activity_status})` : '') },
      { label: 'Arguments', render: (c) => fmtJson(c.arguments) },
      // A stream consumer's offset, the one it reads next (ringmq's stream_offset).
      { label: 'Stream offset', sort: 'stream_offset', numeric: true, cls: 'num col-stream-offset', render: (c) => (typeof c.stream_offset === 'number' ? fmtNum(c.stream_offset) : '') },
    ].filter(Boolean);
    return sortable ? cols : cols.map((c) => Object.assign({}, c, { sort: undefined }));
  }
  function consumersPage(main) {
    const list = listView({
      key: 'consumers', title: 'Consumers',
      path: (v) => (v ? u`/consumers/${v}` : '/consumers'),
      defaultSort: 'queue.name',
      filterText: (c) => [get(c, 'queue.name'), c.consumer_tag],
      filterLabel: 'Filter by queue or tag',
      rowAttrs: (c) => ({ 'data-name': c.consumer_tag, 'data-queue': get(c, 'queue.name') }),
      emptyText: 'No consumers.',
      columns: consumerColumns({ vhost: !session.vhost, queue: true, channel: true }),
    });
    mount(main, pageTitle('Consumers'), list.el);
    return { refresh: list.refresh };
  }

  // ---- Users and permissions
  function usersPage(main) {
    const uState = { sort: 'name', reverse: false };
    const pState = { sort: 'user', reverse: false };
    let users = [];
    let perms = [];
    const usersT = dataTable([
      { label: 'Name', sort: 'name', cls: 'col-name', render: (x) => x.name },
      { label: 'Tags', render: (x) => tagList(x.tags).map((t) => badge(t, 'tag', 'tag')) },
      { label: 'Can access vhosts', render: (x) => perms.filter((p) => p.user === x.name).map((p) => p.vhost).join(', ') || h('span', { class: 'muted' }, 'no access') },
      { label: 'Password', render: (x) => (x.password_hash === '' ? h('span', { class: 'muted' }, 'none') : 'set') },
      {
        label: '', cls: 'act', render: (x) => h('button', {
          type: 'button', class: 'small danger',
          onclick: (ev) => {
            if (!confirm(`Delete user "${x.name}"?`)) return;
            act(ev.currentTarget, async () => {
              await api('DELETE', u`/users/${x.name}`);
              toast(`User "${x.name}" deleted.`);
              refresh();
            }, 'Delete user');
          },
        }, 'Delete'),
      },
    ], uState, () => draw(), {
      rowAttrs: (x) => ({ 'data-name': x.name }),
    });
    const permsT = dataTable([
      { label: 'User', sort: 'user', render: (p) => p.user },
      { label: 'Virtual host', sort: 'vhost', render: (p) => p.vhost },
      { label: 'Configure', render: (p) => h('code', null, p.configure) },
      { label: 'Write', render: (p) => h('code', null, p.write) },
      { label: 'Read', render: (p) => h('code', null, p.read) },
      {
        label: '', cls: 'act', render: (p) => h('button', {
          type: 'button', class: 'small danger',
          onclick: (ev) => act(ev.currentTarget, async () => {
            await api('DELETE', u`/permissions/${p.vhost}/${p.user}`);
            toast('Permissions cleared.');
            refresh();
          }, 'Clear permissions'),
        }, 'Clear'),
      },
    ], pState, () => draw());
    const tagsInput = h('input', { name: 'tags', placeholder: 'administrator, monitoring', autocomplete: 'off' });
    const addForm = h('form', { id: 'add-user', class: 'grid-form' },
      field('Username', h('input', { name: 'username', required: true, autocomplete: 'off' })),
      field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password' }), 'empty: no password (cannot log in with one)'),
      field('Tags', tagsInput, h('span', null, ...['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'].map((t) =>
        h('button', {
          type: 'button', class: 'link tagpick',
          onclick: () => {
            const cur = tagList(tagsInput.value);
            if (!cur.includes(t)) cur.push(t);
            tagsInput.value = cur.join(', ');
          },
        }, t)))),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add / update user')));
    addForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = addForm.elements;
      act(addForm.querySelector('button[type=submit]'), async () => {
        const name = f.username.value.trim();
        const body = { tags: tagList(f.tags.value).join(',') };
        if (f.password.value) body.password = f.password.value;
        else body.password_hash = '';
        await api('PUT', u`/users/${name}`, { body });
        toast(`User "${name}" saved.`);
        f.username.value = '';
        f.password.value = '';
        f.tags.value = '';
        refresh();
      }, 'Add user');
    });
    const userSel = h('select', { name: 'user' });
    const permForm = h('form', { id: 'set-permissions', class: 'grid-form' },
      field('User', userSel), field('Virtual host', vhostSelect()),
      field('Configure regexp', h('input', { name: 'configure', value: '.*' })),
      field('Write regexp', h('input', { name: 'write', value: '.*' })),
      field('Read regexp', h('input', { name: 'read', value: '.*' })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Set permissions')));
    permForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = permForm.elements;
      act(permForm.querySelector('button[type=submit]'), async () => {
        await api('PUT', u`/permissions/${f.vhost.value}/${f.user.value}`, {
          body: { configure: f.configure.value, write: f.write.value, read: f.read.value },
        });
        toast(`Permissions set for "${f.user.value}" in "${f.vhost.value}".`);
        refresh();
      }, 'Set permissions');
    });
    mount(main, pageTitle('Users and permissions'),
      section('Users', h('div', { class: 'scroll' }, usersT.el)),
      collapsible('Add or update a user', true, addForm),
      section('Permissions', h('div', { class: 'scroll' }, permsT.el)),
      collapsible('Set permissions', true, permForm));
    function draw() {
      usersT.setRows(clientSort(users, uState.sort, uState.reverse), 'No users.');
      permsT.setRows(clientSort(perms, pState.sort, pState.reverse), 'No permissions.');
      const cur = userSel.value;
      userSel.replaceChildren(...options(users.map((x) => x.name), cur || session.user));
    }
    async function refresh() {
      try {
        [users, perms] = await Promise.all([api('GET', '/users'), api('GET', '/permissions')]);
      } catch (e) {
        showError(e);
        return;
      }
      draw();
    }
    return { refresh };
  }

  // ---- Vhosts
  function vhostsPage(main) {
    const st = { sort: 'name', reverse: false };
    let rows = [];
    const t = dataTable([
      { label: 'Name', sort: 'name', cls: 'col-name', render: (v) => v.name },
      { label: 'Description', render: (v) => v.description || get(v, 'metadata.description') || '' },
      { label: 'Tags', render: (v) => tagList(v.tags).map((x) => badge(x, 'tag', 'tag')) },
      { label: 'Ready', sort: 'messages_ready', numeric: true, cls: 'num', render: (v) => fmtNum(v.messages_ready) },
      { label: 'Unacked', sort: 'messages_unacknowledged', numeric: true, cls: 'num', render: (v) => fmtNum(v.messages_unacknowledged) },
      { label: 'Total', sort: 'messages', numeric: true, cls: 'num', render: (v) => fmtNum(v.messages) },
      { label: 'Publish', sort: 'message_stats.publish_details.rate', numeric: true, cls: 'num', render: (v) => fmtRate(rateOf(v.message_stats, 'publish')) },
      { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', numeric: true, cls: 'num', render: (v) => fmtRate(rateOf(v.message_stats, 'deliver_get')) },
      {
        label: '', cls: 'act', render: (v) => h('button', {
          type: 'button', class: 'small danger',
          onclick: (ev) => {
            if (!confirm(`Delete virtual host "${v.name}" and everything in it?`)) return;
            act(ev.currentTarget, async () => {
              await api('DELETE', u`/vhosts/${v.name}`);
              toast(`Virtual host "${v.name}" deleted.`);
              if (session.vhost === v.name) setVhost('');
              await loadVhosts();
              refresh();
            }, 'Delete vhost');
          },
        }, 'Delete'),
      },
    ], st, () => t.setRows(clientSort(rows, st.sort, st.reverse)), { rowAttrs: (v) => ({ 'data-name': v.name }) });
    const form = h('form', { id: 'add-vhost', class: 'grid-form' },
      field('Name', h('input', { name: 'name', required: true, autocomplete: 'off' })),
      field('Description', h('input', { name: 'description', autocomplete: 'off' })),
      field('Tags', h('input', { name: 'tags', placeholder: 'comma separated', autocomplete: 'off' })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add virtual host')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = form.elements;
      act(form.querySelector('button[type=submit]'), async () => {
        const name = f.name.value.trim();
        await api('PUT', u`/vhosts/${name}`, { body: { description: f.description.value, tags: tagList(f.tags.value).join(',') } });
        toast(`Virtual host "${name}" added.`);
        form.reset();
        await loadVhosts();
        refresh();
      }, 'Add vhost');
    });
    mount(main, pageTitle('Virtual hosts'), section(null, h('div', { class: 'scroll' }, t.el)), collapsible('Add a new virtual host', true, form));
    async function refresh() {
      try {
        rows = await api('GET', '/vhosts');
      } catch (e) {
        showError(e);
        return;
      }
      t.setRows(clientSort(rows, st.sort, st.reverse), 'No virtual hosts.');
    }
    return { refresh };
  }

  // ---- Policies and operator policies (one page each, the same shapes)
  const POLICY_KINDS = {
    user: {
      title: 'Policies', api: '/policies', form: 'add-policy', what: 'Policy', applyTo: 'all',
      applyToChoices: [['all', 'Exchanges and queues'], ['queues', 'Queues'], ['exchanges', 'Exchanges'],
        ['classic_queues', 'Classic queues'], ['quorum_queues', 'Quorum queues'], ['streams', 'Streams']],
      placeholder: '{"max-length": 10000, "message-ttl": 60000}',
    },
    operator: {
      title: 'Operator policies', api: '/operator-policies', form: 'add-operator-policy', what: 'Operator policy', applyTo: 'queues',
      applyToChoices: [['queues', 'Queues'], ['classic_queues', 'Classic queues'], ['quorum_queues', 'Quorum queues']],
      placeholder: '{"max-length": 100000, "message-ttl": 86400000}',
      intro: 'Set by administrators, applied to queues on top of the (user) policy: where both set a numeric limit, the lower one wins. '
        + 'Keys: message-ttl, expires, max-length, max-length-bytes, delivery-limit, max-in-memory-length, max-in-memory-bytes.',
    },
  };
  function policiesPage(main) {
    return policyKindPage(main, POLICY_KINDS.user);
  }
  function operatorPoliciesPage(main) {
    return policyKindPage(main, POLICY_KINDS.operator);
  }
  function policyKindPage(main, kind) {
    const st = { sort: 'name', reverse: false };
    let rows = [];
    const form = h('form', { id: kind.form, class: 'grid-form' },
      field('Virtual host', vhostSelect()),
      field('Name', h('input', { name: 'name', required: true, autocomplete: 'off' })),
      field('Pattern', h('input', { name: 'pattern', required: true, placeholder: '^amq\\.', autocomplete: 'off' })),
      field('Apply to', h('select', { name: 'apply-to' }, options(kind.applyToChoices, kind.applyTo))),
      field('Priority', h('input', { name: 'priority', type: 'number', value: '0' })),
      h('label', { class: 'field wide' }, h('span', { class: 'lbl' }, 'Definition (JSON)'),
        h('textarea', { name: 'definition', rows: 3, required: true, placeholder: kind.placeholder })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, `Add / update ${kind.what.toLowerCase()}`)));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = form.elements;
      act(form.querySelector('button[type=submit]'), async () => {
        const name = f.name.value.trim();
        const definition = parseJsonField(f.definition.value, 'Definition');
        await api('PUT', `${kind.api}/${u`${f.vhost.value}/${name}`}`, {
          body: { pattern: f.pattern.value, definition, priority: Number(f.priority.value) || 0, 'apply-to': f['apply-to'].value },
        });
        toast(`${kind.what} "${name}" saved.`);
        refresh();
      }, `Save ${kind.what.toLowerCase()}`);
    });
    function edit(p) {
      const f = form.elements;
      f.vhost.value = p.vhost;
      f.name.value = p.name;
      f.pattern.value = p.pattern;
      f['apply-to'].value = p['apply-to'] || kind.applyTo;
      f.priority.value = String(p.priority ?? 0);
      f.definition.value = JSON.stringify(p.definition || {}, null, 1);
      form.closest('details').open = true;
      f.name.focus();
    }
    const t = dataTable([
      session.vhost ? null : { label: 'Virtual host', sort: 'vhost', render: (p) => p.vhost },
      { label: 'Name', sort: 'name', cls: 'col-name', render: (p) => p.name },
      { label: 'Pattern', sort: 'pattern', render: (p) => h('code', null, p.pattern) },
      { label: 'Apply to', sort: 'apply-to', render: (p) => p['apply-to'] },
      { label: 'Definition', render: (p) => h('code', null, fmtJson(p.definition)) },
      { label: 'Priority', sort: 'priority', numeric: true, cls: 'num', render: (p) => fmtNum(p.priority) },
      {
        label: '', cls: 'act', render: (p) => [
          h('button', { type: 'button', class: 'small', onclick: () => edit(p) }, 'Edit'), ' ',
          h('button', {
            type: 'button', class: 'small danger',
            onclick: (ev) => {
              if (!confirm(`Delete ${kind.what.toLowerCase()} "${p.name}"?`)) return;
              act(ev.currentTarget, async () => {
                await api('DELETE', `${kind.api}/${u`${p.vhost}/${p.name}`}`);
                toast(`${kind.what} "${p.name}" deleted.`);
                refresh();
              }, `Delete ${kind.what.toLowerCase()}`);
            },
          }, 'Delete')],
      },
    ].filter(Boolean), st, () => t.setRows(clientSort(rows, st.sort, st.reverse)), { rowAttrs: (p) => ({ 'data-name': p.name }) });
    mount(main, pageTitle(kind.title), kind.intro ? h('p', { class: 'muted intro' }, kind.intro) : null,
      section(null, h('div', { class: 'scroll' }, t.el)), collapsible(`Add or update ${kind.what === 'Policy' ? 'a' : 'an'} ${kind.what.toLowerCase()}`, true, form));
    async function refresh() {
      try {
        rows = await api('GET', kind.api + (session.vhost ? u`/${session.vhost}` : ''));
      } catch (e) {
        showError(e);
        return;
      }
      t.setRows(clientSort(rows, st.sort, st.reverse), `No ${kind.title.toLowerCase()}.`);
    }
    return { refresh };
  }

  // ---- Limits: per vhost and per user, one table row per limit set
  const LIMIT_KINDS = {
    vhost: { key: 'vhost', title: 'Virtual host limits', api: '/vhost-limits', form: 'set-vhost-limit', who: 'Virtual host', names: ['max-connections', 'max-queues'] },
    user: { key: 'user', title: 'User limits', api: '/user-limits', form: 'set-user-limit', who: 'User', names: ['max-connections', 'max-channels'] },
  };
  function limitsPart(kind, refreshAll) {
    const st = { sort: kind.key, reverse: false };
    let rows = [];
    const t = dataTable([
      { label: kind.who, sort: kind.key, cls: 'col-name', render: (r) => r[kind.key] },
      { label: 'Limit', sort: 'limit', render: (r) => r.limit },
      { label: 'Value', sort: 'value', numeric: true, cls: 'num col-value', render: (r) => fmtNum(r.value) },
      {
        label: '', cls: 'act', render: (r) => h('button', {
          type: 'button', class: 'small danger',
          onclick: (ev) => act(ev.currentTarget, async () => {
            await api('DELETE', `${kind.api}/${u`${r[kind.key]}/${r.limit}`}`);
            toast(`Limit ${r.limit} of "${r[kind.key]}" cleared.`);
            refreshAll();
          }, 'Clear limit'),
        }, 'Clear'),
      },
    ], st, draw, { rowAttrs: (r) => ({ 'data-name': r[kind.key], 'data-limit': r.limit }) });
    const who = h('select', { name: kind.key });
    const form = h('form', { id: kind.form, class: 'grid-form' },
      field(kind.who, who),
      field('Limit', h('select', { name: 'limit' }, options(kind.names, kind.names[0]))),
      field('Value', h('input', { name: 'value', type: 'number', step: 1, required: true }), '0 allows none; a negative value removes the limit'),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Set limit')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = form.elements;
      act(form.querySelector('button[type=submit]'), async () => {
        const target = f[kind.key].value;
        await api('PUT', `${kind.api}/${u`${target}/${f.limit.value}`}`, { body: { value: Number(f.value.value) } });
        toast(`Limit ${f.limit.value} of "${target}" set.`);
        f.value.value = '';
        refreshAll();
      }, 'Set limit');
    });
    function draw() {
      t.setRows(clientSort(rows, st.sort, st.reverse), 'No limits.');
    }
    return {
      el: [section(kind.title, h('div', { class: 'scroll', id: 'limits-' + kind.key }, t.el)), collapsible(`Set a ${kind.key} limit`, true, form)],
      // list: the API's [{vhost|user, value: {name: n}}]; choices: the names the form offers
      show(list, choices) {
        rows = list.flatMap((e) => Object.entries(e.value || {}).map(([limit, value]) => ({ [kind.key]: e[kind.key], limit, value })));
        draw();
        const cur = who.value;
        who.replaceChildren(...options(choices, cur || (kind.key === 'vhost' ? session.vhost || '/' : session.user)));
      },
    };
  }
  function limitsPage(main) {
    const vhosts = limitsPart(LIMIT_KINDS.vhost, refresh);
    const users = limitsPart(LIMIT_KINDS.user, refresh);
    mount(main, pageTitle('Limits'), vhosts.el, users.el);
    async function refresh() {
      let vl, ul, us;
      try {
        [vl, ul, us] = await Promise.all([
          api('GET', session.vhost ? u`/vhost-limits/${session.vhost}` : '/vhost-limits'),
          api('GET', '/user-limits'),
          api('GET', '/users'),
        ]);
      } catch (e) {
        showError(e);
        return;
      }
      vhosts.show(vl || [], session.vhosts);
      users.show(ul || [], (us || []).map((x) => x.name).sort());
    }
    return { refresh };
  }

  // ---- Topic permissions
  function topicPermissionsPage(main) {
    const st = { sort: 'user', reverse: false };
    let rows = [];
    const t = dataTable([
      { label: 'User', sort: 'user', cls: 'col-name', render: (p) => p.user },
      session.vhost ? null : { label: 'Virtual host', sort: 'vhost', render: (p) => p.vhost },
      { label: 'Exchange', sort: 'exchange', render: (p) => p.exchange },
      { label: 'Write regexp', render: (p) => h('code', null, p.write) },
      { label: 'Read regexp', render: (p) => h('code', null, p.read) },
      {
        label: '', cls: 'act', render: (p) => h('button', {
          type: 'button', class: 'small danger',
          onclick: (ev) => act(ev.currentTarget, async () => {
            await api('DELETE', u`/topic-permissions/${p.vhost}/${p.user}/${p.exchange}`);
            toast(`Topic permission of "${p.user}" on "${p.exchange}" cleared.`);
            refresh();
          }, 'Clear topic permission'),
        }, 'Clear'),
      },
    ].filter(Boolean), st, draw, { rowAttrs: (p) => ({ 'data-name': p.user, 'data-vhost': p.vhost, 'data-exchange': p.exchange }) });
    const userSel = h('select', { name: 'user' });
    const vhostSel = vhostSelect();
    const topicExchanges = h('datalist', { id: 'topic-exchanges' });
    const form = h('form', { id: 'set-topic-permission', class: 'grid-form' },
      field('User', userSel), field('Virtual host', vhostSel),
      field('Exchange', h('input', { name: 'exchange', list: 'topic-exchanges', required: true, value: 'amq.topic', autocomplete: 'off' }), 'a topic exchange'),
      field('Write regexp', h('input', { name: 'write', value: '.*' }), 'routing keys the user may publish with'),
      field('Read regexp', h('input', { name: 'read', value: '.*' }), 'binding keys the user may bind and unbind with'),
      topicExchanges,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Set topic permission')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = form.elements;
      act(form.querySelector('button[type=submit]'), async () => {
        await api('PUT', u`/topic-permissions/${f.vhost.value}/${f.user.value}`, {
          body: { exchange: f.exchange.value, write: f.write.value, read: f.read.value },
        });
        toast(`Topic permission set for "${f.user.value}" on "${f.exchange.value}".`);
        refresh();
      }, 'Set topic permission');
    });
    async function loadExchanges() {
      const v = vhostSel.value;
      let xs;
      try {
        xs = await api('GET', u`/exchanges/${v}`);
      } catch {
        return; // only suggestions: the field takes any name
      }
      if (vhostSel.value !== v) return;
      topicExchanges.replaceChildren(...(Array.isArray(xs) ? xs : xs.items || []).filter((x) => x.type === 'topic').map((x) => h('option', { value: x.name })));
    }
    vhostSel.addEventListener('change', loadExchanges);
    loadExchanges();
    mount(main, pageTitle('Topic permissions'),
      h('p', { class: 'muted intro' }, 'Write and read patterns per user, virtual host and topic exchange: publishes to the exchange need a routing key matching the write pattern, '
        + 'binds and unbinds from it a binding key matching the read pattern. No entry for an exchange allows every key; {username} and {vhost} in a pattern stand for the user and the vhost.'),
      section(null, h('div', { class: 'scroll' }, t.el)), collapsible('Set a topic permission', true, form));
    function draw() {
      t.setRows(clientSort(rows, st.sort, st.reverse), 'No topic permissions.');
    }
    async function refresh() {
      let users;
      try {
        [rows, users] = await Promise.all([
          api('GET', session.vhost ? u`/vhosts/${session.vhost}/topic-permissions` : '/topic-permissions'),
          api('GET', '/users'),
        ]);
      } catch (e) {
        showError(e);
        return;
      }
      draw();
      const cur = userSel.value;
      userSel.replaceChildren(...options(users.map((x) => x.name).sort(), cur || session.user));
    }
    return { refresh };
  }

  // ---- Federation: the links (/api/federation-links) and the upstreams
  // (federation-upstream parameters); policies name the upstreams.
  function federationPage(main) {
    const lst = { sort: 'name', reverse: false };
    const ust = { sort: 'name', reverse: false };
    let links = [];
    let upstreams = [];
    // Credentials in a URI are not shown.
    const safe = (uri) => String(uri || '').replace(/\/\/[^@/]*@/, '//');
    const lt = dataTable([
      session.vhost ? null : { label: 'Virtual host', sort: 'vhost', render: (l) => l.vhost },
      { label: 'Type', sort: 'type', render: (l) => l.type },
      { label: 'Exchange or queue', sort: 'name', cls: 'col-name', render: (l) => l.name },
      { label: 'Upstream', sort: 'upstream', render: (l) => l.upstream },
      { label: 'Upstream exchange or queue', render: (l) => l.upstream_exchange || l.upstream_queue || '' },
      { label: 'Status', sort: 'status', render: (l) => h('span', { 'data-field': 'status' }, l.status) },
      { label: 'URI', render: (l) => safe(l.uri) },
      { label: 'Since', sort: 'timestamp', render: (l) => l.timestamp || '' },
      { label: 'Error', render: (l) => h('code', { 'data-field': 'error' }, l.error || '') },
      {
        label: '', cls: 'act', render: (l) => h('button', {
          type: 'button', class: 'small',
          onclick: (ev) => act(ev.currentTarget, async () => {
            await api('DELETE', u`/federation-links/vhost/${l.vhost}/${l.id}/${l.node}/restart`);
            toast(`Federation link of "${l.name}" restarted.`);
            refresh();
          }, 'Restart link'),
        }, 'Restart'),
      },
    ].filter(Boolean), lst, drawLinks, { rowAttrs: (l) => ({ 'data-name': l.name, 'data-vhost': l.vhost }) });
    const ut = dataTable([
      session.vhost ? null : { label: 'Virtual host', sort: 'vhost', render: (p) => p.vhost },
      { label: 'Name', sort: 'name', cls: 'col-name', render: (p) => p.name },
      { label: 'URI', render: (p) => [].concat(p.value.uri || []).map(safe).join(', ') },
      { label: 'Exchange', render: (p) => p.value.exchange || '' },
      { label: 'Queue', render: (p) => p.value.queue || '' },
      { label: 'Max hops', render: (p) => String(p.value['max-hops'] || 1) },
      { label: 'Prefetch', render: (p) => String(p.value['prefetch-count'] || 1000) },
      { label: 'Ack mode', render: (p) => p.value['ack-mode'] || 'on-confirm' },
      {
        label: '', cls: 'act', render: (p) => h('button', {
          type: 'button', class: 'small danger',
          onclick: (ev) => {
            if (!confirm(`Delete upstream "${p.name}"?`)) return;
            act(ev.currentTarget, async () => {
              await api('DELETE', u`/parameters/federation-upstream/${p.vhost}/${p.name}`);
              toast(`Upstream "${p.name}" deleted.`);
              refresh();
            }, 'Delete upstream');
          },
        }, 'Delete'),
      },
    ].filter(Boolean), ust, drawUpstreams, { rowAttrs: (p) => ({ 'data-name': p.name, 'data-vhost': p.vhost }) });
    ut.el.id = 'list-upstreams';
    lt.el.id = 'list-federation-links';
    const form = h('form', { id: 'add-upstream', class: 'grid-form' },
      field('Virtual host', vhostSelect()),
      field('Name', h('input', { name: 'name', required: true, autocomplete: 'off' })),
      field('URI', h('input', { name: 'uri', required: true, value: 'amqp://', autocomplete: 'off' }),
        'amqp://user:pass@host:port/vhost; amqp:// alone is this broker'),
      field('Exchange', h('input', { name: 'exchange', autocomplete: 'off' }), 'upstream exchange, when not named as the federated one'),
      field('Queue', h('input', { name: 'queue', autocomplete: 'off' }), 'upstream queue, when not named as the federated one'),
      field('Max hops', h('input', { name: 'max-hops', type: 'number', min: 1, value: 1 })),
      field('Prefetch count', h('input', { name: 'prefetch-count', type: 'number', min: 1, value: 1000 })),
      field('Expires (ms)', h('input', { name: 'expires', type: 'number', min: 1 }), 'x-expires of the queue made upstream'),
      field('Message TTL (ms)', h('input', { name: 'message-ttl', type: 'number', min: 0 })),
      field('Ack mode', h('select', { name: 'ack-mode' }, options(['on-confirm', 'on-publish', 'no-ack'], 'on-confirm'))),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add upstream')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = form.elements;
      act(form.querySelector('button[type=submit]'), async () => {
        const value = { uri: f.uri.value, 'ack-mode': f['ack-mode'].value };
        for (const k of ['exchange', 'queue']) if (f[k].value !== '') value[k] = f[k].value;
        for (const k of ['max-hops', 'prefetch-count', 'expires', 'message-ttl']) {
          if (f[k].value !== '') value[k] = Number(f[k].value);
        }
        const name = f.name.value.trim();
        await api('PUT', u`/parameters/federation-upstream/${f.vhost.value}/${name}`, { body: { value } });
        toast(`Upstream "${name}" added.`);
        refresh();
      }, 'Add upstream');
    });
    mount(main, pageTitle('Federation'),
      h('p', { class: 'muted intro' }, 'An exchange or queue whose policy names an upstream (federation-upstream) or a set of them '
        + '(federation-upstream-set, "all": every upstream) receives what is published to the upstream\'s exchange, or fetches '
        + 'from its queue while it has consumers, as RabbitMQ\'s federation plugin does. Set the policy on the Policies page.'),
      section('Links', h('div', { class: 'scroll' }, lt.el)),
      section('Upstreams', h('div', { class: 'scroll' }, ut.el)),
      collapsible('Add an upstream', true, form));
    function drawLinks() {
      lt.setRows(clientSort(links, lst.sort, lst.reverse), 'No federation links.');
    }
    function drawUpstreams() {
      ut.setRows(clientSort(upstreams, ust.sort, ust.reverse), 'No upstreams.');
    }
    async function refresh() {
      let params, status;
      try {
        [params, status] = await Promise.all([
          api('GET', session.vhost ? u`/parameters/federation-upstream/${session.vhost}` : '/parameters/federation-upstream'),
          api('GET', session.vhost ? u`/federation-links/${session.vhost}` : '/federation-links'),
        ]);
      } catch (e) {
        showError(e);
        return;
      }
      upstreams = params.map((p) => ({ vhost: p.vhost, name: p.name, value: p.value || {} }));
      links = status.map((l) => ({ ...l, name: l.exchange !== undefined ? l.exchange : l.queue }));
      drawLinks();
      drawUpstreams();
    }
    return { refresh };
  }

  // ---- Shovels: the shovel parameters, each with its status (/api/shovels)
  function shovelsPage(main) {
    const st = { sort: 'name', reverse: false };
    let rows = [];
    const endpoint = (value, side) => {
      const q = value[`${side}-queue`];
      const x = value[`${side}-exchange`];
      const key = value[`${side}-exchange-key`];
      const what = q !== undefined ? `queue ${q}` : x !== undefined ? `exchange ${x}${key ? ` (${key})` : ''}` : '';
      const uri = [].concat(value[`${side}-uri`] || [])[0] || '';
      // Credentials in a URI are not shown.
      return `${what} @ ${uri.replace(/\/\/[^@/]*@/, '//')}`;
    };
    const t = dataTable([
      session.vhost ? null : { label: 'Virtual host', sort: 'vhost', render: (s) => s.vhost },
      { label: 'Name', sort: 'name', cls: 'col-name', render: (s) => s.name },
      { label: 'State', sort: 'state', render: (s) => h('span', { 'data-field': 'state' }, s.state) },
      { label: 'Source', render: (s) => endpoint(s.value, 'src') },
      { label: 'Destination', render: (s) => endpoint(s.value, 'dest') },
      { label: 'Ack mode', render: (s) => s.value['ack-mode'] || 'on-confirm' },
      { label: 'Reason', render: (s) => h('code', { 'data-field': 'reason' }, s.reason || '') },
      {
        label: '', cls: 'act', render: (s) => [
          h('button', {
            type: 'button', class: 'small',
            onclick: (ev) => act(ev.currentTarget, async () => {
              await api('DELETE', u`/shovels/vhost/${s.vhost}/${s.name}/restart`);
              toast(`Shovel "${s.name}" restarted.`);
              refresh();
            }, 'Restart shovel'),
          }, 'Restart'), ' ',
          h('button', {
            type: 'button', class: 'small danger',
            onclick: (ev) => {
              if (!confirm(`Delete shovel "${s.name}"?`)) return;
              act(ev.currentTarget, async () => {
                await api('DELETE', u`/parameters/shovel/${s.vhost}/${s.name}`);
                toast(`Shovel "${s.name}" deleted.`);
                refresh();
              }, 'Delete shovel');
            },
          }, 'Delete'),
        ],
      },
    ].filter(Boolean), st, draw, { rowAttrs: (s) => ({ 'data-name': s.name, 'data-vhost': s.vhost }) });
    const side = (label, s) => [
      field(`${label} URI`, h('input', { name: `${s}-uri`, required: true, value: 'amqp://', autocomplete: 'off' }),
        'amqp://user:pass@host:port/vhost; amqp:// alone is this broker'),
      field(`${label} queue`, h('input', { name: `${s}-queue`, autocomplete: 'off' }), 'or an exchange below'),
      field(`${label} exchange`, h('input', { name: `${s}-exchange`, autocomplete: 'off' })),
      field(`${label} routing key`, h('input', { name: `${s}-exchange-key`, autocomplete: 'off' })),
    ];
    const form = h('form', { id: 'add-shovel', class: 'grid-form' },
      field('Virtual host', vhostSelect()),
      field('Name', h('input', { name: 'name', required: true, autocomplete: 'off' })),
      ...side('Source', 'src'), ...side('Destination', 'dest'),
      field('Ack mode', h('select', { name: 'ack-mode' }, options(['on-confirm', 'on-publish', 'no-ack'], 'on-confirm'))),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add shovel')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = form.elements;
      act(form.querySelector('button[type=submit]'), async () => {
        const value = { 'ack-mode': f['ack-mode'].value };
        for (const k of ['src-uri', 'src-queue', 'src-exchange', 'src-exchange-key', 'dest-uri', 'dest-queue', 'dest-exchange', 'dest-exchange-key']) {
          if (f[k].value !== '') value[k] = f[k].value;
        }
        const name = f.name.value.trim();
        await api('PUT', u`/parameters/shovel/${f.vhost.value}/${name}`, { body: { value } });
        toast(`Shovel "${name}" added.`);
        refresh();
      }, 'Add shovel');
    });
    mount(main, pageTitle('Shovels'),
      h('p', { class: 'muted intro' }, 'Dynamic shovels move messages from a queue or exchange to a queue or exchange, here or on another broker, as RabbitMQ\'s shovel plugin does. '
        + 'With on-confirm nothing is acknowledged at the source before the destination confirmed it.'),
      section(null, h('div', { class: 'scroll' }, t.el)), collapsible('Add a shovel', true, form));
    function draw() {
      t.setRows(clientSort(rows, st.sort, st.reverse), 'No shovels.');
    }
    async function refresh() {
      let params, status;
      try {
        [params, status] = await Promise.all([
          api('GET', session.vhost ? u`/parameters/shovel/${session.vhost}` : '/parameters/shovel'),
          api('GET', session.vhost ? u`/shovels/${session.vhost}` : '/shovels'),
        ]);
      } catch (e) {
        showError(e);
        return;
      }
      rows = params.map((p) => {
        const s = status.find((x) => x.vhost === p.vhost && x.name === p.name) || {};
        return { vhost: p.vhost, name: p.name, value: p.value || {}, state: s.state || 'starting', reason: s.reason };
      });
      draw();
    }
    return { refresh };
  }

  // ---- Definitions
  function definitionsPage(main) {
    const allOpt = () => [h('option', { value: '' }, 'All virtual hosts'), ...session.vhosts.map((v) => h('option', { value: v }, v))];
    const exVhost = h('select', { name: 'vhost' }, allOpt());
    const exportForm = h('form', { id: 'export-definitions', class: 'grid-form' },
      field('Virtual host', exVhost),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Download definitions')));
    exportForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(exportForm.querySelector('button'), async () => {
        const v = exVhost.value;
        const defs = await api('GET', v ? u`/definitions/${v}` : '/definitions');
        const blob = new Blob([JSON.stringify(defs, null, 2) + '\n'], { type: 'application/json' });
        const a = h('a', { href: URL.createObjectURL(blob), download: `${location.hostname || 'ringmq'}_definitions${v ? '_' + v.replace(/[^\w.-]+/g, '_') : ''}_${new Date().toISOString().slice(0, 10)}.json` });
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(a.href), 10000);
        toast('Definitions exported.');
      }, 'Export definitions');
    });
    const imVhost = h('select', { name: 'vhost' }, allOpt());
    const file = h('input', { type: 'file', name: 'file', accept: '.json,application/json', required: true });
    const importForm = h('form', { id: 'import-definitions', class: 'grid-form' },
      field('Definitions file', file), field('Into virtual host', imVhost),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Upload definitions')));
    importForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(importForm.querySelector('button'), async () => {
        if (!file.files.length) throw new Error('Choose a file first');
        const text = await file.files[0].text();
        try {
          JSON.parse(text);
        } catch (e) {
          throw new Error('The file is not valid JSON: ' + e.message);
        }
        const v = imVhost.value;
        await api('POST', v ? u`/definitions/${v}` : '/definitions', { body: text, headers: { 'content-type': 'application/json' } });
        toast('Definitions imported.');
        importForm.reset();
        loadVhosts();
      }, 'Import definitions');
    });
    mount(main, pageTitle('Definitions'),
      section('Export', h('p', { class: 'muted' }, 'Users, virtual hosts, permissions, policies, parameters, exchanges, queues and bindings as JSON (RabbitMQ format).'), exportForm),
      section('Import', h('p', { class: 'muted' }, 'Objects in the file are created or updated; nothing is deleted. A per-vhost import takes the file of one virtual host.'), importForm));
    return {};
  }

  // ---- Login
  function loginPage(main, _params, message) {
    $('#top').hidden = true;
    const err = h('p', { class: 'inline-error', hidden: !message }, message || '');
    const form = h('form', { id: 'login', class: 'login card' },
      h('h1', null, 'ringmq'),
      h('p', { class: 'muted' }, 'Management console'),
      err,
      field('Username', h('input', { name: 'username', required: true, autocomplete: 'username', value: session.user || '' })),
      field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password' })),
      h('button', { type: 'submit', class: 'primary' }, 'Log in'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = form.elements;
      const auth = 'Basic ' + b64(`${f.username.value}:${f.password.value}`);
      const btn = form.querySelector('button');
      btn.disabled = true;
      err.hidden = true;
      try {
        const me = await api('GET', '/whoami', { auth, login: true });
        session.auth = auth;
        session.user = me.name || f.username.value;
        sessionStorage.setItem(AUTH_KEY, auth);
        sessionStorage.setItem(USER_KEY, session.user);
        await startSession(me);
      } catch (e) {
        err.textContent = e.status === 401 ? 'Login failed: wrong username or password.' : e.message;
        err.hidden = false;
      } finally {
        btn.disabled = false;
      }
    });
    mount(main, form);
    form.elements[session.user ? 'password' : 'username'].focus();
    return { isLogin: true };
  }

  // --------------------------------------------------------------- session
  async function loadVhosts() {
    try {
      const vs = await api('GET', '/vhosts');
      session.vhosts = vs.map((v) => v.name).sort();
    } catch (e) {
      if (e.status === 401) return;
      session.vhosts = session.vhosts.length ? session.vhosts : ['/'];
    }
    if (session.vhost && !session.vhosts.includes(session.vhost)) setVhost('');
    const sel = $('#vhost-select');
    sel.replaceChildren(h('option', { value: '' }, 'All'), ...session.vhosts.map((v) => h('option', { value: v, selected: v === session.vhost }, v)));
    sel.value = session.vhost;
  }
  function setVhost(v) {
    session.vhost = v;
    if (v) sessionStorage.setItem(VHOST_KEY, v);
    else sessionStorage.removeItem(VHOST_KEY);
  }
  async function startSession(me) {
    if (!me) {
      try {
        me = await api('GET', '/whoami');
      } catch (e) {
        if (e.status !== 401) showError(e);
        return;
      }
    }
    session.tags = tagList(me.tags);
    $('#whoami').textContent = `${session.user}${session.tags.length ? ' (' + session.tags.join(', ') + ')' : ''}`;
    for (const a of $$('#nav a[data-need]')) a.hidden = !hasTag(a.dataset.need);
    $('#top').hidden = false;
    await loadVhosts();
    overview.start();
    if (!location.hash || location.hash === '#/login') location.hash = '#/';
    else route();
  }
  function logout(message) {
    if (current && current.isLogin && !session.auth) return;
    session.auth = null;
    sessionStorage.removeItem(AUTH_KEY);
    overview.stop();
    overview.history = [];
    overview.data = null;
    overview.nodes = null;
    updateAlarms(null);
    showPage(loginPage, [], message);
  }

  // ---------------------------------------------------------------- router
  const routes = {
    '': [overviewPage, 0],
    queues: [queuesPage, 0, queuePage, 2],
    exchanges: [exchangesPage, 0, exchangePage, 2],
    connections: [connectionsPage, 0, connectionPage, 1],
    channels: [channelsPage, 0, channelPage, 1],
    nodes: [nodesPage, 0],
    consumers: [consumersPage, 0],
    users: [usersPage, 0],
    'topic-permissions': [topicPermissionsPage, 0],
    vhosts: [vhostsPage, 0],
    limits: [limitsPage, 0],
    policies: [policiesPage, 0],
    'operator-policies': [operatorPoliciesPage, 0],
    shovels: [shovelsPage, 0],
    federation: [federationPage, 0],
    definitions: [definitionsPage, 0],
  };
  let current = null;
  function showPage(fn, params, extra) {
    if (current) {
      clearInterval(current.timer);
      if (current.dispose) current.dispose();
    }
    const main = $('#main');
    main.replaceChildren();
    const page = fn(main, params, extra) || {};
    current = page;
    if (page.refresh) {
      page.refresh();
      if (page.interval !== 0) {
        page.timer = setInterval(() => {
          if (!document.hidden) page.refresh();
        }, page.interval || POLL_MS);
      }
    }
    window.scrollTo(0, 0);
  }
  function route() {
    if (!session.auth) return logout();
    const raw = location.hash.replace(/^#\/?/, '');
    const parts = raw === '' ? [''] : raw.split('/').map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
    const [head, ...rest] = parts;
    const r = routes[head];
    for (const a of $$('#nav a')) a.classList.toggle('active', a.dataset.route === head);
    if (r && rest.length === r[1]) return showPage(r[0], rest);
    if (r && r[2] && rest.length === r[3]) return showPage(r[2], rest);
    showPage((main) => {
      mount(main, pageTitle('Not found'), section(null, h('p', null, 'No such page. '), link('#/', 'Go to the overview')));
    }, []);
  }

  window.addEventListener('hashchange', () => {
    if (session.auth) route();
  });
  $('#logout').addEventListener('click', () => {
    session.user = session.user || '';
    logout('Logged out.');
  });
  $('#vhost-select').addEventListener('change', (ev) => {
    setVhost(ev.target.value);
    route();
  });

  if (session.auth) startSession();
  else logout();
})();
