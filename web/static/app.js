// multihome dashboard. Plain JavaScript, no dependencies, no build step.
//
// Data flow: GET /api/v1/history once (sparklines start full), then
// GET /api/v1/links every sample interval (measurements), and the decision
// log from GET /api/v1/events followed live on /api/v1/events/stream
// (state changes show at once, before the next poll). Actions POST to
// /api/v1/links/{name}/{drain|down|up}.
'use strict';

(() => {
  const TOKEN_KEY = 'multihome.token';
  const MAX_EVENTS = 300;
  // Link colours avoid the state colours (green, amber, red).
  const PALETTE = ['#58a6ff', '#a371f7', '#39c5cf', '#db61a2', '#9ecbff', '#d2a8ff', '#56d4dd', '#8b949e'];

  let token = localStorage.getItem(TOKEN_KEY) || '';
  let pollMs = 2000;
  let windowMs = 360000; // what a sparkline spans
  let lastSeq = 0;
  let order = []; // link names in config order
  const links = new Map(); // name -> {data, series, el}
  const events = []; // decision log entries, oldest first

  const $ = (sel, root = document) => root.querySelector(sel);
  const SVG = 'http://www.w3.org/2000/svg';

  function h(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  // ---- formatting ----
  function fmtMs(ns) {
    const ms = ns / 1e6;
    if (ms >= 1000) return [(ms / 1000).toFixed(2), 's'];
    return [ms < 10 ? ms.toFixed(1) : Math.round(ms).toString(), 'ms'];
  }
  function fmtPct(r) {
    const p = r * 100;
    if (p === 0) return '0';
    return p < 10 ? p.toFixed(1) : Math.round(p).toString();
  }
  function fmtRate(bps) {
    if (bps >= 1e9) return (bps / 1e9).toFixed(2) + ' Gbit/s';
    if (bps >= 1e6) return (bps / 1e6).toFixed(1) + ' Mbit/s';
    if (bps >= 1e3) return Math.round(bps / 1e3) + ' kbit/s';
    return bps + ' bit/s';
  }
  function fmtAgo(t) {
    const ms = Date.now() - new Date(t).getTime();
    if (!t || t.startsWith('0001') || isNaN(ms)) return '';
    let s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const hr = Math.floor(s / 3600); s -= hr * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d > 0) return `${d}d ${hr}h`;
    if (hr > 0) return `${hr}h ${String(m).padStart(2, '0')}m`;
    if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
    return `${s}s`;
  }
  function fmtTime(t) {
    const d = new Date(t);
    return d.toLocaleTimeString([], { hour12: false });
  }

  // ---- API ----
  async function api(path, opts = {}) {
    const headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
    if (token) headers.Authorization = 'Bearer ' + token;
    const res = await fetch(path, Object.assign({ cache: 'no-store' }, opts, { headers }));
    const ct = res.headers.get('Content-Type') || '';
    const body = ct.includes('json') ? await res.json().catch(() => null) : null;
    if (res.status === 401) {
      askToken(token ? 'The saved token was refused.' : '');
      throw new Error('the API wants a token');
    }
    if (!res.ok) {
      const err = new Error((body && body.error) || `${res.status} ${res.statusText}`);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  let tokenWaiters = [];
  function askToken(why) {
    $('#token-button').hidden = false;
    const d = $('#token-dialog');
    if (d.open) return;
    const p = $('p', d);
    p.textContent = (why ? why + ' ' : '') + 'This multihome API requires a bearer token. It is kept in this browser only.';
    $('#token-input').value = '';
    d.showModal();
  }
  function tokenChanged() {
    const w = tokenWaiters;
    tokenWaiters = [];
    w.forEach((f) => f());
  }
  const waitToken = () => new Promise((r) => tokenWaiters.push(r));

  // ---- links ----
  function entryFor(name) {
    let l = links.get(name);
    if (!l) {
      l = { data: null, series: [], el: null };
      links.set(name, l);
    }
    return l;
  }

  function addSample(l, s) {
    l.series.push(s);
    const cut = Date.now() - windowMs - pollMs;
    while (l.series.length && l.series[0].t < cut) l.series.shift();
  }

  async function poll() {
    try {
      const res = await api('/api/v1/links');
      const now = Date.now();
      order = res.links.map((x) => x.link);
      for (const name of [...links.keys()]) {
        if (!order.includes(name)) {
          const gone = links.get(name);
          if (gone.el) gone.el.root.remove();
          links.delete(name);
        }
      }
      for (const d of res.links) {
        const l = entryFor(d.link);
        l.data = d;
        addSample(l, {
          t: now, state: d.state, rtt_ns: d.rtt_ns, loss: d.loss,
          util_down: d.util_down, util_up: d.util_up,
          rate_down_bps: d.rate_down_bps, rate_up_bps: d.rate_up_bps,
        });
      }
      renderAll();
      pollOK(true);
      loadBGP();
      loadIPv6();
      loadMPTCP();
    } catch (e) {
      pollOK(false, e.message);
    }
  }

  let apiDown = false;
  function pollOK(ok, msg) {
    if (ok === !apiDown) return;
    apiDown = !ok;
    if (!ok) {
      const o = $('#overall');
      o.dataset.health = 'down';
      $('#overall-text').textContent = 'API unreachable';
      o.title = msg || '';
    }
  }

  function renderAll() {
    const box = $('#links');
    $('#links-empty').hidden = order.length > 0;
    order.forEach((name, i) => {
      const l = links.get(name);
      if (!l || !l.data) return;
      if (!l.el) l.el = buildCard(name);
      l.color = PALETTE[i % PALETTE.length];
      if (box.children[i + 1] !== l.el.root) box.insertBefore(l.el.root, box.children[i + 1] || null);
      renderCard(l);
    });
    renderOverall();
    renderShare();
  }

  function renderOverall() {
    const ds = order.map((n) => links.get(n)).filter((l) => l && l.data).map((l) => l.data);
    const c = { up: 0, degraded: 0, down: 0, unknown: 0 };
    let usable = 0, draining = 0, forced = 0;
    for (const d of ds) {
      c[d.state] = (c[d.state] || 0) + 1;
      if (d.usable) usable++;
      if (d.admin === 'drain') draining++;
      if (d.admin === 'down') forced++;
    }
    let health = 'down', text = 'No usable link';
    if (ds.length && c.up === ds.length) {
      health = 'ok'; text = ds.length === 1 ? 'Link up' : `All ${ds.length} links up`;
    } else if (usable > 0) {
      health = 'degraded'; text = `Degraded: ${c.up} of ${ds.length} up`;
    }
    const o = $('#overall');
    o.dataset.health = health;
    o.title = '';
    $('#overall-text').textContent = text;
    const counts = $('#counts');
    counts.replaceChildren();
    const add = (n, label) => {
      const s = h('span');
      s.append(h('b', '', String(n)), ' ' + label);
      counts.append(s);
    };
    add(c.up, 'up');
    if (c.degraded) add(c.degraded, 'degraded');
    if (c.down) add(c.down, 'down');
    if (c.unknown) add(c.unknown, 'unknown');
    if (draining) add(draining, 'draining');
    if (forced) add(forced, 'forced down');
    document.title = (health === 'ok' ? '' : health === 'down' ? '✖ ' : '▲ ') + 'multihome';
  }

  function metricBox(key, label) {
    const m = h('div', 'metric');
    m.dataset.m = key;
    const lab = h('div', 'label');
    const side = h('span', 'side');
    lab.append(h('span', '', label), side);
    const val = h('div', 'value');
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 100 30');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('aria-hidden', 'true');
    m.append(lab, val, svg);
    return { box: m, side, val, svg };
  }

  function buildCard(name) {
    const root = h('article', 'card');
    root.dataset.link = name;
    const head = h('div', 'head');
    const title = h('div', 'title');
    const lname = h('span', 'lname', name);
    const iface = h('span', 'iface');
    title.append(lname, iface);
    const badges = h('div', 'badges');
    const state = h('span', 'pill state');
    head.append(title, badges);
    const metrics = h('div', 'metrics');
    const rtt = metricBox('rtt', 'RTT');
    const loss = metricBox('loss', 'Loss');
    const util = metricBox('util', 'Utilisation');
    metrics.append(rtt.box, loss.box, util.box);
    const facts = h('div', 'facts');
    const targets = h('div', 'targets');
    const foot = h('div', 'foot');
    const since = h('div', 'since');
    const reason = h('div', 'reason');
    const actions = h('div', 'actions');
    const btn = {};
    for (const [a, label, tip] of [
      ['drain', 'Drain', 'Keep existing flows, send new ones elsewhere'],
      ['down', 'Down', 'Force the link down: its traffic moves to the other links'],
      ['up', 'Up', 'Clear the override: the link follows its health again'],
    ]) {
      const b = h('button', '', label);
      b.type = 'button';
      b.dataset.action = a;
      b.title = tip;
      b.addEventListener('click', () => openAction(name, a));
      actions.append(b);
      btn[a] = b;
    }
    foot.append(since, actions, reason);
    root.append(head, metrics, facts, targets, foot);
    return { root, iface, badges, state, rtt, loss, util, facts, targets, since, reason, btn };
  }

  function renderCard(l) {
    const d = l.data, el = l.el;
    const prev = el.root.dataset.state;
    el.root.dataset.state = d.state;
    if (prev && prev !== d.state) {
      el.root.classList.remove('flash');
      void el.root.offsetWidth; // restart the animation
      el.root.classList.add('flash');
    }
    el.iface.textContent = d.interface;

    const badges = [];
    if (d.admin === 'drain') badges.push(['badge-drain', 'drain', 'Draining: no new flows']);
    if (d.admin === 'down') badges.push(['badge-admindown', 'forced down', 'Forced down by an operator']);
    if (d.hold_down) badges.push(['badge-hold', 'hold-down', 'Recovered: waiting out the hold-down before failback']);
    if (d.saturated) badges.push(['badge-sat', 'saturated', 'Utilisation over the saturation threshold']);
    if (!d.carrier && d.state !== 'unknown') badges.push(['badge-carrier', 'no carrier', 'The interface has no carrier']);
    if (d.holds && d.holds.length) badges.push(['badge-carrier', 'held down', 'Held down by: ' + d.holds.join('; ')]);
    el.badges.replaceChildren(...badges.map(([c, t, tip]) => {
      const b = h('span', 'pill ' + c, t);
      b.title = tip;
      return b;
    }), el.state);
    el.state.textContent = d.state;
    el.state.title = d.health !== d.state ? `health: ${d.health}` : '';

    const live = d.state !== 'down' && d.state !== 'unknown';
    setValue(el.rtt.val, live && d.rtt_ns > 0 ? fmtMs(d.rtt_ns) : ['–', '']);
    el.rtt.side.textContent = live && d.rtt_p95_ns > 0 ? 'p95 ' + fmtMs(d.rtt_p95_ns).join(' ') : '';
    setValue(el.loss.val, d.state !== 'unknown' ? [fmtPct(d.loss), '%'] : ['–', '']);
    el.loss.side.textContent = '';
    const hasCap = d.util_down > 0 || d.util_up > 0 || (d.rate_down_bps === 0 && d.rate_up_bps === 0);
    el.util.val.replaceChildren();
    if (hasCap) {
      el.util.val.append(fmtPct(d.util_down), h('small', '', '%'), h('span', 'sep', '/'), fmtPct(d.util_up), h('small', '', '%'));
    } else {
      el.util.val.append(h('small', '', 'no capacity set'));
    }
    if (!el.util.side.firstChild) {
      const dn = h('span', 'key-down', '↓');
      const up = h('span', 'key-up', '↑');
      el.util.side.append(dn, ' / ', up);
      el.util.side.title = 'down (received) / up (sent)';
    }

    const s = l.series;
    spark(el.rtt.svg, s, [{ key: 'rtt_ns', cls: 'spark-rtt', skipDown: true }], Math.max(5e6, 1.15 * Math.max(0, ...s.filter((x) => x.state !== 'down').map((x) => x.rtt_ns))));
    spark(el.loss.svg, s, [{ key: 'loss', cls: 'spark-loss' }], Math.max(0.05, 1.1 * Math.max(0, ...s.map((x) => x.loss))));
    spark(el.util.svg, s, [{ key: 'util_down', cls: 'spark-down' }, { key: 'util_up', cls: 'spark-up', noArea: true }], 1);

    const f = [];
    f.push(['Traffic', `↓ ${fmtRate(d.rate_down_bps)}  ↑ ${fmtRate(d.rate_up_bps)}`]);
    if (live && d.jitter_ns > 0) f.push(['Jitter', fmtMs(d.jitter_ns).join(' ')]);
    f.push(['Targets', `${d.targets_up}/${d.targets.length}`]);
    el.facts.replaceChildren(...f.map(([k, v]) => {
      const sp = h('span');
      sp.append(k + ' ', h('b', '', v));
      return sp;
    }));
    el.targets.replaceChildren(...d.targets.map((t) => {
      const e = h('span', 'target' + (t.up ? ' up' : ''));
      e.append(h('span', 'dot'), `${t.type} ${t.target}`);
      const bits = [`${t.type} ${t.target}: ${t.up ? 'answering' : 'not answering'}`];
      if (t.rtt_ns > 0) bits.push('RTT ' + fmtMs(t.rtt_ns).join(' '));
      bits.push(`loss ${fmtPct(t.loss)}%`, `${t.sent} sent, ${t.lost} lost`);
      if (t.last_error) bits.push('last error: ' + t.last_error);
      e.title = bits.join(' · ');
      return e;
    }));
    renderReason(l);

    el.btn.drain.disabled = d.admin === 'drain';
    el.btn.down.disabled = d.admin === 'down';
    el.btn.up.disabled = d.admin === 'none';
  }

  function renderReason(l) {
    const d = l.data;
    const ago = fmtAgo(d.since);
    l.el.since.textContent = ago ? `${d.state[0].toUpperCase() + d.state.slice(1)} for ${ago}` : '';
    l.el.reason.textContent = d.reason || '';
    l.el.reason.title = d.reason || '';
  }

  function setValue(el, [v, unit]) {
    el.replaceChildren(v);
    if (unit) el.append(h('small', '', unit));
  }

  // spark draws series lines (and areas) over the last windowMs, scaled to
  // max, with the periods the link was down shaded.
  function spark(svg, series, lines, max) {
    svg.replaceChildren();
    const now = Date.now();
    const x = (t) => 100 - ((now - t) / windowMs) * 100;
    const y = (v) => 29 - clamp(v / max, 0, 1) * 27;
    // Down periods.
    let start = null;
    series.forEach((s, i) => {
      const down = s.state === 'down';
      if (down && start === null) start = s.t;
      const end = !down && start !== null ? s.t : (i === series.length - 1 && start !== null ? now : null);
      if (end !== null && start !== null) {
        const r = document.createElementNS(SVG, 'rect');
        r.setAttribute('x', Math.max(0, x(start)));
        r.setAttribute('width', Math.max(0.8, x(end) - Math.max(0, x(start))));
        r.setAttribute('y', 0);
        r.setAttribute('height', 30);
        r.setAttribute('class', 'spark-gap');
        svg.append(r);
        start = null;
      }
    });
    for (const ln of lines) {
      // Split into runs: a down link has no RTT to draw.
      const runs = [];
      let run = [];
      for (const s of series) {
        if (ln.skipDown && (s.state === 'down' || s.state === 'unknown')) {
          if (run.length) runs.push(run);
          run = [];
          continue;
        }
        run.push([x(s.t), y(s[ln.key] || 0)]);
      }
      if (run.length) runs.push(run);
      for (const r of runs) {
        if (r.length === 1) r.push([Math.min(100, r[0][0] + 0.8), r[0][1]]);
        const pts = r.map(([a, b]) => `${a.toFixed(2)},${b.toFixed(2)}`).join(' L');
        if (!ln.noArea) {
          const area = document.createElementNS(SVG, 'path');
          area.setAttribute('d', `M${r[0][0].toFixed(2)},30 L${pts} L${r[r.length - 1][0].toFixed(2)},30 Z`);
          area.setAttribute('class', 'spark-area ' + ln.cls);
          svg.append(area);
        }
        const p = document.createElementNS(SVG, 'path');
        p.setAttribute('d', 'M' + pts);
        p.setAttribute('class', 'spark-line ' + ln.cls);
        svg.append(p);
      }
    }
  }

  function renderShare() {
    const ds = order.map((n) => links.get(n)).filter((l) => l && l.data);
    const total = ds.reduce((a, l) => a + l.data.rate_down_bps + l.data.rate_up_bps, 0);
    const bar = $('#sharebar');
    const body = $('#share-legend tbody');
    bar.replaceChildren();
    body.replaceChildren();
    $('#share-total').textContent = total > 0 ? fmtRate(total) + ' total' : 'no traffic';
    for (const l of ds) {
      const d = l.data;
      const own = d.rate_down_bps + d.rate_up_bps;
      const share = total > 0 ? own / total : 0;
      if (share > 0) {
        const seg = h('div');
        seg.style.width = (share * 100).toFixed(2) + '%';
        seg.style.background = l.color;
        seg.title = `${d.link}: ${fmtPct(share)}%`;
        bar.append(seg);
      }
      const tr = h('tr', d.usable ? '' : 'down');
      const name = h('td');
      const sw = h('span', 'swatch');
      sw.style.background = l.color;
      name.append(sw, d.link);
      tr.append(name, h('td', '', fmtRate(d.rate_down_bps)), h('td', '', fmtRate(d.rate_up_bps)), h('td', '', fmtPct(share) + '%'));
      body.append(tr);
    }
  }

  // ---- BGP sessions ----
  // null: not asked yet; false: the daemon has no BGP (404), asked again
  // only after a config reload.
  let bgpAvailable = null;
  let bgpBusy = false;
  let bgpAgain = false;
  async function loadBGP(recheck) {
    if (recheck) bgpAvailable = null;
    if (bgpAvailable === false) return;
    if (bgpBusy) { bgpAgain = true; return; }
    bgpBusy = true;
    try {
      const res = await api('/api/v1/bgp');
      bgpAvailable = true;
      renderBGP(res.neighbors || []);
    } catch (e) {
      if (e.status === 404) {
        bgpAvailable = false;
        $('#bgp-panel').hidden = true;
      }
    } finally {
      bgpBusy = false;
    }
    if (bgpAgain) {
      bgpAgain = false;
      loadBGP();
    }
  }

  function announcement(n) {
    if (n.withdrawn || !n.announced) return ['withdrawn', 'withdrawn', 'Our prefixes are not exported to this neighbour'];
    if (n.prepend > 0) return ['prepended', `prepended ×${n.prepend}`, `Announced with ${n.prepend} extra copies of our AS`];
    return ['announced', 'announced', 'Our prefixes are exported to this neighbour'];
  }

  function renderBGP(ns) {
    $('#bgp-panel').hidden = false;
    const up = ns.filter((n) => n.state === 'established').length;
    $('#bgp-count').textContent = ns.length ? `${up} of ${ns.length} established` : 'no neighbours';
    $('#bgp tbody').replaceChildren(...ns.map((n) => {
      const tr = h('tr');
      tr.dataset.neighbor = n.neighbor;
      tr.dataset.state = n.state;
      const st = h('td');
      const pill = h('span', 'pill state bgp-' + n.state, n.state);
      st.append(pill);
      const [cls, label, tip] = announcement(n);
      const ann = h('td', 'ann ann-' + cls, label);
      ann.title = tip;
      const bfd = h('td', n.bfd ? 'bfd-' + n.bfd : 'muted', n.bfd || '—');
      const why = h('td', 'why');
      const ago = fmtAgo(n.since);
      if (ago) {
        const b = h('b', '', ago + ' ago');
        b.title = new Date(n.since).toString();
        why.append(b);
      }
      why.append(n.reason || '');
      tr.append(h('td', 'addr', n.neighbor), h('td', 'l', n.link), h('td', '', 'AS' + n.peer_as), st,
        h('td', 'n', String(n.prefixes_sent)), h('td', 'n', String(n.prefixes_received)), ann, bfd, why);
      return tr;
    }));
  }

  // ---- IPv6 prefixes ----
  // As for BGP: null not asked yet, false no ipv6 section (404), asked
  // again only after a config reload.
  let ipv6Available = null;
  let ipv6Busy = false;
  let ipv6Again = false;
  async function loadIPv6(recheck) {
    if (recheck) ipv6Available = null;
    if (ipv6Available === false) return;
    if (ipv6Busy) { ipv6Again = true; return; }
    ipv6Busy = true;
    try {
      const res = await api('/api/v1/ipv6');
      ipv6Available = true;
      renderIPv6(res);
    } catch (e) {
      if (e.status === 404) {
        ipv6Available = false;
        $('#ipv6-panel').hidden = true;
      }
    } finally {
      ipv6Busy = false;
    }
    if (ipv6Again) {
      ipv6Again = false;
      loadIPv6();
    }
  }

  // fmtSecs shows an advertised lifetime.
  function fmtSecs(s) {
    if (s >= 0xffffffff) return 'infinite';
    if (s < 120) return s + 's';
    if (s < 5400) return Math.round(s / 60) + 'm';
    if (s < 172800) return Math.round(s / 3600) + 'h';
    return Math.round(s / 86400) + 'd';
  }

  // fmtIn shows how long until an instant: "in 29m", "passed".
  function fmtIn(t) {
    const d = (Date.parse(t) - Date.now()) / 1000;
    if (!(d === d)) return '';
    if (d < 0) return 'passed';
    if (d > 50 * 365 * 86400) return 'never';
    return 'in ' + fmtSecs(Math.round(d));
  }

  function renderIPv6(st) {
    $('#ipv6-panel').hidden = false;
    const ps = st.prefixes || [];
    const pref = ps.filter((p) => p.state === 'preferred').length;
    $('#ipv6-count').textContent = `${st.mode || ''} on ${st.lan || '?'}: ` +
      (ps.length ? `${pref} of ${ps.length} preferred` : 'no prefixes');
    $('#ipv6 tbody').replaceChildren(...ps.map((p) => {
      const tr = h('tr');
      tr.dataset.link = p.link || '';
      tr.dataset.state = p.state;
      if (p.prefix) tr.dataset.prefix = p.prefix;
      const st = h('td');
      st.append(h('span', 'pill state v6-' + p.state, p.state));
      const pending = p.state === 'pending';
      const lease = h('td', 'why');
      if (p.lease) {
        const l = p.lease;
        const b = h('b', '', 'renew ' + fmtIn(l.renew_at));
        b.title = `T1 ${new Date(l.renew_at)}, T2 ${new Date(l.rebind_at)}`;
        lease.append(b, `valid ${fmtIn(l.valid_until)}`);
        lease.title = `delegated ${l.delegated}` + (l.bound_at ? `, bound since ${new Date(l.bound_at)}` : '') +
          (l.server ? `, server ${l.server}` : '');
      } else {
        lease.classList.add('muted');
        lease.textContent = '—';
      }
      tr.append(h('td', 'l', p.link || '—'), h('td', 'addr', p.prefix || '—'), h('td', '', p.source), st,
        h('td', 'n', pending ? '—' : fmtSecs(p.preferred_lifetime_s)), h('td', 'n', pending ? '—' : fmtSecs(p.valid_lifetime_s)),
        lease, h('td', 'why', p.reason || ''));
      return tr;
    }));
    const sets = st.firewall_sets || [];
    $('#ipv6-sets').replaceChildren(...sets.map((s) => {
      const li = h('li', s.error ? 'set-error' : 'set-ok');
      li.dataset.set = `${s.family} ${s.table} ${s.set}`;
      li.append(h('b', '', `${s.family} ${s.table} ${s.set}`), ` {${(s.prefixes || []).join(', ')}} `,
        h('span', s.error ? 'to-down' : 'to-up', s.error ? s.error : 'ok'));
      return li;
    }));
  }

  // ---- MPTCP endpoints ----
  // As for BGP: null not asked yet, false no mptcp section (404), asked
  // again only after a config reload.
  let mptcpAvailable = null;
  let mptcpBusy = false;
  let mptcpAgain = false;
  async function loadMPTCP(recheck) {
    if (recheck) mptcpAvailable = null;
    if (mptcpAvailable === false) return;
    if (mptcpBusy) { mptcpAgain = true; return; }
    mptcpBusy = true;
    try {
      const res = await api('/api/v1/mptcp');
      mptcpAvailable = true;
      renderMPTCP(res);
    } catch (e) {
      if (e.status === 404) {
        mptcpAvailable = false;
        $('#mptcp-panel').hidden = true;
      }
    } finally {
      mptcpBusy = false;
    }
    if (mptcpAgain) {
      mptcpAgain = false;
      loadMPTCP();
    }
  }

  function renderMPTCP(st) {
    $('#mptcp-panel').hidden = false;
    const ls = st.links || [];
    const eps = st.endpoints || [];
    const used = ls.filter((l) => l.mode === 'subflow').length;
    const lim = st.limits || {};
    $('#mptcp-count').textContent = (ls.length ? `${used} of ${ls.length} links for subflows` : 'no links') +
      `, limits: ${lim.subflows ?? '?'} subflows, ${lim.add_addr_accepted ?? '?'} addresses accepted`;
    $('#mptcp-links tbody').replaceChildren(...ls.map((l) => {
      const tr = h('tr');
      tr.dataset.link = l.link;
      tr.dataset.mode = l.mode;
      const mode = h('td');
      mode.append(h('span', 'pill state mp-' + l.mode, l.mode));
      const ids = (l.endpoints || []).join(' ');
      tr.append(h('td', 'l', l.link), h('td', '', l.state), mode,
        h('td', ids ? 'n' : 'muted', ids || '—'), h('td', 'why', l.reason || ''));
      return tr;
    }));
    $('#mptcp tbody').replaceChildren(...eps.map((ep) => {
      const tr = h('tr');
      tr.dataset.id = String(ep.id);
      if (ep.operator) tr.dataset.operator = 'true';
      const link = ep.operator ? h('td', 'muted', 'operator') : h('td', 'l', ep.link || '');
      link.title = ep.operator ? 'The operator\'s own endpoint: multihome leaves it alone' : 'Kept by multihome for this link';
      tr.append(h('td', 'n', String(ep.id)), h('td', 'addr', ep.port ? `${ep.address} port ${ep.port}` : ep.address),
        h('td', '', (ep.flags || []).join(' ')), link, h('td', ep.interface ? '' : 'muted', ep.interface || '—'));
      return tr;
    }));
    const err = $('#mptcp-error');
    err.hidden = !st.error;
    err.textContent = st.error ? 'last apply: ' + st.error : '';
  }

  // ---- audit ----
  let auditURL = '';
  async function loadAudit() {
    let rep;
    try {
      rep = await api('/api/v1/audit');
    } catch (e) {
      if (e.status === 404) $('#audit-panel').hidden = true;
      return;
    }
    renderAudit(rep);
    // The picture: with a token, an <img> cannot send the header, so fetch
    // it and show a blob URL.
    const img = $('#audit-svg');
    if (!token) {
      img.src = '/api/v1/audit.svg?at=' + Date.now();
      return;
    }
    try {
      const res = await fetch('/api/v1/audit.svg', { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
      if (!res.ok) return;
      const url = URL.createObjectURL(await res.blob());
      img.src = url;
      if (auditURL) URL.revokeObjectURL(auditURL);
      auditURL = url;
    } catch (e) { /* keep the old picture */ }
  }

  function renderAudit(rep) {
    $('#audit-panel').hidden = false;
    const fs = rep.findings || [];
    const by = {};
    for (const f of fs) by[f.severity] = (by[f.severity] || 0) + 1;
    const parts = ['high', 'medium', 'low', 'info'].filter((s) => by[s]).map((s) => `${by[s]} ${s}`);
    const spofs = (rep.spofs || []).length;
    $('#audit-sum').textContent = (fs.length ? `${fs.length} findings: ${parts.join(', ')}` : 'no findings') +
      (spofs ? ` · ${spofs} single point${spofs > 1 ? 's' : ''} of failure` : '');
    $('#findings').replaceChildren(...fs.map((f) => {
      const li = h('li', 'finding sev-' + f.severity);
      li.dataset.check = f.check;
      const head = h('div', 'fh');
      head.append(h('span', 'sev', f.severity), h('span', 'check', f.check));
      li.append(head, h('div', 'sum', f.summary));
      if (f.recommendation) li.append(h('div', 'fix', f.recommendation));
      return li;
    }));
    if (!fs.length) $('#findings').append(h('li', 'empty small', 'No findings: no single point of failure found in the config.'));
  }

  // ---- decision log ----
  async function loadEvents() {
    try {
      const res = await api('/api/v1/events?limit=200');
      events.splice(0, events.length, ...res.events);
      lastSeq = res.last;
      renderEvents(new Set());
    } catch (e) { /* the stream retries */ }
  }

  function onEntry(e) {
    if (e.seq <= lastSeq) return;
    lastSeq = e.seq;
    events.push(e);
    while (events.length > MAX_EVENTS) events.shift();
    renderEvents(new Set([e.seq]));
    loadBGP(e.kind === 'reload');
    loadIPv6(e.kind === 'reload');
    loadMPTCP(e.kind === 'reload');
    if (e.kind === 'reload') loadAudit();
    if (e.status && e.link && links.has(e.link)) {
      const l = links.get(e.link);
      l.data = e.status;
      addSample(l, {
        t: Date.now(), state: e.status.state, rtt_ns: e.status.rtt_ns, loss: e.status.loss,
        util_down: e.status.util_down, util_up: e.status.util_up,
        rate_down_bps: e.status.rate_down_bps, rate_up_bps: e.status.rate_up_bps,
      });
      renderAll();
    }
  }

  function stateSpan(s) {
    return h('span', 'to to-' + s, s);
  }

  function eventCell(e) {
    const td = h('td', 'k');
    switch (e.kind) {
      case 'state':
        td.append(stateSpan(e.from), h('span', 'arrow', '→'), stateSpan(e.to));
        break;
      case 'admin': {
        const a = e.status ? e.status.admin : '';
        td.append('admin', h('span', 'arrow', '→'), h('span', 'to to-' + (a === 'drain' ? 'drain' : a === 'down' ? 'down' : 'up'), a === 'none' ? 'cleared' : a));
        break;
      }
      case 'saturation':
        td.append(h('span', 'to to-degraded', e.status && e.status.saturated ? 'saturated' : 'saturation over'));
        break;
      case 'hold-down':
        td.append(h('span', 'to to-degraded', 'hold-down'));
        break;
      case 'reload':
        td.append(e.error ? h('span', 'to to-down', 'reload rejected') : h('span', 'to to-up', 'config reloaded'));
        break;
      case 'bgp': {
        // A BGP announcement decision: announce, prepend N or withdraw.
        const cls = e.to === 'withdraw' ? 'down' : e.to === 'announce' ? 'up' : 'degraded';
        td.append('bgp ');
        if (e.from) td.append(e.from, h('span', 'arrow', '→'));
        td.append(h('span', 'to to-' + cls, e.to));
        break;
      }
      default:
        td.append(e.kind);
    }
    return td;
  }

  function renderEvents(fresh) {
    const body = $('#events tbody');
    body.replaceChildren(...events.slice().reverse().map((e) => {
      const tr = h('tr', fresh.has(e.seq) ? 'new' : '');
      tr.dataset.seq = e.seq;
      const t = h('td', 't', fmtTime(e.time));
      t.title = new Date(e.time).toString();
      const r = h('td', 'r', e.neighbor ? `neighbor ${e.neighbor}: ${e.reason}` : e.reason);
      if (e.error) r.append(h('span', 'err', e.error));
      tr.append(t, h('td', 'l', e.link || '—'), eventCell(e), r);
      return tr;
    }));
    $('#events-empty').hidden = events.length > 0;
    $('#log-count').textContent = events.length ? `${events.length} recent` : '';
  }

  function setLive(state, text) {
    const l = $('#live');
    l.dataset.live = state;
    $('#live-text').textContent = text;
  }

  // stream follows the event stream over fetch (EventSource cannot send
  // the Authorization header), reconnecting after the last entry seen.
  async function stream() {
    for (;;) {
      const ctl = new AbortController();
      let watchdog;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ctl.abort(), 45000); // keep-alives come every 15 s
      };
      try {
        const headers = { Accept: 'text/event-stream' };
        if (token) headers.Authorization = 'Bearer ' + token;
        arm();
        const res = await fetch('/api/v1/events/stream?since=' + lastSeq, { headers, cache: 'no-store', signal: ctl.signal });
        if (res.status === 401) {
          clearTimeout(watchdog);
          setLive('retry', 'Token needed');
          askToken('');
          await waitToken();
          continue;
        }
        if (!res.ok) throw new Error(res.status);
        setLive('on', 'Live');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = block.split('\n').filter((x) => x.startsWith('data:')).map((x) => x.slice(5).replace(/^ /, '')).join('\n');
            if (data) {
              try { onEntry(JSON.parse(data)); } catch (err) { console.error('bad event', err); }
            }
          }
        }
      } catch (e) { /* reconnect below */ }
      clearTimeout(watchdog);
      setLive('retry', 'Reconnecting…');
      await sleep(2000);
    }
  }

  // ---- actions ----
  const ACTIONS = {
    drain: {
      title: (n) => `Drain ${n}`,
      text: 'Existing flows stay on this link; new flows go to the other links. Use it before maintenance.',
      cls: 'purple', ok: 'Drain',
    },
    down: {
      title: (n) => `Force ${n} down`,
      text: 'The link is treated as failed: its traffic moves to the other links now.',
      cls: 'danger', ok: 'Force down',
    },
    up: {
      title: (n) => `Clear the override on ${n}`,
      text: 'The link follows its health again and takes new flows while it is up.',
      cls: 'primary', ok: 'Clear',
    },
  };

  function openAction(name, action) {
    const a = ACTIONS[action];
    const d = $('#action-dialog');
    d.dataset.link = name;
    d.dataset.action = action;
    $('#action-title').textContent = a.title(name);
    $('#action-text').textContent = a.text;
    const ok = $('#action-ok');
    ok.className = a.cls;
    ok.textContent = a.ok;
    $('#action-reason').value = '';
    d.returnValue = '';
    d.showModal();
    $('#action-reason').focus();
  }

  async function doAction(name, action, reason) {
    try {
      const l = await api(`/api/v1/links/${encodeURIComponent(name)}/${action}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason }),
      });
      const e = entryFor(name);
      e.data = l;
      renderAll();
      const what = { drain: 'draining', down: 'forced down', none: 'override cleared' }[l.admin] || l.admin;
      toast(`${name}: ${what}`, 'ok');
    } catch (err) {
      toast(`${action} ${name} failed: ${err.message}`, 'error');
    }
  }

  function toast(msg, kind) {
    const t = h('div', 'toast ' + (kind || ''), msg);
    $('#toasts').append(t);
    setTimeout(() => t.remove(), 5000);
  }

  function wire() {
    const d = $('#action-dialog');
    d.addEventListener('close', () => {
      if (d.returnValue === 'ok') doAction(d.dataset.link, d.dataset.action, $('#action-reason').value.trim());
    });
    $('#action-reason').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        d.close('ok');
      }
    });
    const td = $('#token-dialog');
    const save = () => {
      token = $('#token-input').value.trim();
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
      tokenChanged();
      refresh();
    };
    td.addEventListener('close', () => {
      if (td.returnValue === 'ok') save();
    });
    $('#token-input').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        td.close('ok');
      }
    });
    $('#token-button').addEventListener('click', () => askToken(''));
  }

  async function refresh() {
    await poll();
    if (!events.length) await loadEvents();
    loadBGP(true);
    loadIPv6(true);
    loadMPTCP(true);
    loadAudit();
  }

  async function loadHistory() {
    try {
      const res = await api('/api/v1/history');
      pollMs = clamp(res.interval_ms || 2000, 250, 10000);
      windowMs = clamp((res.interval_ms || 2000) * (res.samples || 180), 5000, 3600000);
      for (const [name, samples] of Object.entries(res.links)) {
        const l = entryFor(name);
        l.series = samples.map((s) => Object.assign({}, s));
      }
    } catch (e) { /* poll reports */ }
  }

  async function main() {
    $('#host').textContent = location.host;
    wire();
    await loadHistory();
    await poll();
    await loadEvents();
    loadAudit();
    stream();
    const loop = async () => {
      for (;;) {
        await sleep(pollMs);
        await poll();
      }
    };
    loop();
    setInterval(() => links.forEach((l) => l.el && l.data && renderReason(l)), 1000);
  }

  main();
})();
