// hookrelay dashboard script: the events page's live tail and the copy
// buttons. Pages work without it. The CSP allows no inline script, so
// configuration comes from data- attributes; rows are built with
// createElement/textContent only — payload data never reaches innerHTML
// or an href other than our own /events/<id> links.
'use strict';
(function () {
  var MAX_ROWS = 500;
  var STATES = ['received', 'delivered', 'failed', 'held', 'retrying', 'captured', 'rejected'];
  var VERDICTS = ['valid', 'invalid', 'stale', 'missing', 'unchecked'];

  // ---- copy buttons ----
  function fallbackCopy(text) {
    var ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'offscreen';
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    ta.remove();
    return ok;
  }
  Array.prototype.forEach.call(document.querySelectorAll('button.copy[data-copy]'), function (btn) {
    var source = document.getElementById(btn.getAttribute('data-copy'));
    if (!source) return;
    btn.hidden = false;
    btn.addEventListener('click', function () {
      var text = source.textContent;
      var done = function (ok) {
        btn.textContent = ok ? 'Copied' : 'Select and copy by hand';
        setTimeout(function () { btn.textContent = 'Copy'; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(fallbackCopy(text)); });
      } else {
        done(fallbackCopy(text));
      }
    });
  });

  // ---- live tail ----
  var live = document.getElementById('live');
  var tbody = document.getElementById('event-rows');
  if (!live || live.getAttribute('data-live') !== 'on' || !tbody) return;
  var stateEl = document.getElementById('live-state');
  var toggle = document.getElementById('live-toggle');
  if (!window.EventSource) {
    stateEl.textContent = 'live tail needs EventSource';
    return;
  }
  var f = {};
  ['state', 'topic', 'method', 'status', 'signature', 'duplicate'].forEach(function (k) {
    f[k] = live.getAttribute('data-f-' + k) || '';
  });
  var paused = false;
  var queue = [];

  function show(cls, text) {
    stateEl.className = 'live-state ' + cls;
    stateEl.textContent = text;
  }
  function verdictOf(ev) {
    var v = ev.signature && ev.signature.verdict ? String(ev.signature.verdict) : 'unchecked';
    return VERDICTS.indexOf(v) >= 0 ? v : 'unchecked';
  }
  function matches(ev) {
    if (f.state && ev.state !== f.state) return false;
    if (f.method && String(ev.method).toUpperCase() !== f.method.toUpperCase()) return false;
    if (f.topic && ev.topic !== f.topic) return false;
    if (f.status && String(ev.last_status) !== f.status) return false;
    if (f.signature && verdictOf(ev) !== f.signature) return false;
    if ((f.duplicate === 'true' || f.duplicate === '1') && !ev.duplicate_of) return false;
    if ((f.duplicate === 'false' || f.duplicate === '0') && ev.duplicate_of) return false;
    return true;
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function eventLink(id, text) {
    var a = el('a', '', text);
    a.href = '/events/' + encodeURIComponent(id);
    return a;
  }
  function stateBadge(ev) {
    var s = STATES.indexOf(ev.state) >= 0 ? ev.state : 'received';
    return el('span', 'badge ev-' + s, ev.state);
  }
  function verdictBadge(ev) {
    var v = verdictOf(ev);
    var b = el('span', 'badge sig-' + v, v);
    b.title = 'signature: ' + v;
    return b;
  }
  function target(ev) {
    var t = ev.path ? String(ev.path) : '/';
    if (ev.query !== null && ev.query !== undefined) t += '?' + String(ev.query);
    return t;
  }
  function buildRow(ev) {
    var tr = el('tr', 'fresh');
    tr.id = 'ev-' + ev.id;
    tr.setAttribute('data-id', ev.id);
    var time = el('td', 'time');
    var a = eventLink(ev.id, 'just now');
    a.title = ev.received_at;
    time.appendChild(a);
    tr.appendChild(time);
    tr.appendChild(el('td', 'ep', ev.endpoint));
    var req = el('td', 'req');
    var ra = eventLink(ev.id);
    ra.appendChild(el('span', 'method', ev.method));
    ra.appendChild(document.createTextNode(' '));
    ra.appendChild(el('span', 'path', target(ev)));
    req.appendChild(ra);
    if (ev.duplicate_of) {
      req.appendChild(document.createTextNode(' '));
      var dup = eventLink(ev.duplicate_of, 'dup');
      dup.className = 'badge dup';
      dup.title = 'duplicate of ' + ev.duplicate_of;
      req.appendChild(dup);
    }
    tr.appendChild(req);
    tr.appendChild(el('td', 'topic', ev.topic || ''));
    var st = el('td', 'state');
    st.appendChild(stateBadge(ev));
    tr.appendChild(st);
    tr.appendChild(el('td', 'status', ev.last_status === null || ev.last_status === undefined ? '' : ev.last_status));
    var sig = el('td', 'sig');
    sig.appendChild(verdictBadge(ev));
    tr.appendChild(sig);
    tr.appendChild(el('td', 'num size', ev.size));
    return tr;
  }
  function updateRow(tr, ev) {
    var st = tr.querySelector('td.state');
    if (st) { st.textContent = ''; st.appendChild(stateBadge(ev)); }
    var status = tr.querySelector('td.status');
    if (status) status.textContent = ev.last_status === null || ev.last_status === undefined ? '' : String(ev.last_status);
    var sig = tr.querySelector('td.sig');
    if (sig) { sig.textContent = ''; sig.appendChild(verdictBadge(ev)); }
  }
  function apply(ev) {
    if (!ev || !ev.id) return;
    var existing = document.getElementById('ev-' + ev.id);
    if (existing) { updateRow(existing, ev); return; }
    if (!matches(ev)) return;
    tbody.insertBefore(buildRow(ev), tbody.firstChild);
    var empty = document.getElementById('empty-note');
    if (empty) empty.remove();
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
  }
  function handle(ev) {
    if (paused) {
      queue.push(ev);
      show('paused', 'paused · ' + queue.length + ' new');
      return;
    }
    apply(ev);
  }
  function parse(data) {
    try { return JSON.parse(data); } catch (e) { return null; }
  }

  var es = new EventSource(live.getAttribute('data-stream'));
  show('', 'connecting…');
  es.addEventListener('open', function () { show(paused ? 'paused' : 'on', paused ? 'paused' : 'live'); });
  es.addEventListener('error', function () { show('down', 'reconnecting…'); });
  es.addEventListener('event', function (e) { handle(parse(e.data)); });
  es.addEventListener('attempt', function (e) {
    var d = parse(e.data);
    if (d) handle(d.event);
  });
  es.addEventListener('lagged', function (e) {
    show('down', 'missed ' + Number(e.data) + ' updates — reload to catch up');
  });
  toggle.hidden = false;
  toggle.addEventListener('click', function () {
    paused = !paused;
    toggle.textContent = paused ? 'Resume' : 'Pause';
    if (!paused) {
      var pending = queue;
      queue = [];
      pending.forEach(apply);
      show('on', 'live');
    } else {
      show('paused', 'paused');
    }
  });
})();
