// hookrelay dashboard script: the events page's live tail, the copy
// buttons and the replay job page's progress. Pages work without it. The CSP allows no inline script, so
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
  // The filters as the server read them (status=0500 is 500, duplicate=1
  // is true), so a new event matches here exactly when the list would
  // show it.
  var f = {};
  ['state', 'topic', 'method', 'status', 'signature', 'duplicate', 'mirror_diff'].forEach(function (k) {
    f[k] = live.getAttribute('data-f-' + k) || '';
  });
  // A `since` in the future leaves out what arrives before it (the server
  // resolved relative forms such as `1h` into this).
  var sinceMs = Number(live.getAttribute('data-f-since-ms') || '0');
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
    if (sinceMs && !(Date.parse(ev.received_at) >= sinceMs)) return false;
    if (f.state && ev.state !== f.state) return false;
    if (f.method && String(ev.method).toUpperCase() !== f.method.toUpperCase()) return false;
    if (f.topic && ev.topic !== f.topic) return false;
    if (f.status && String(ev.last_status) !== f.status) return false;
    if (f.signature && verdictOf(ev) !== f.signature) return false;
    if (f.duplicate === 'true' && !ev.duplicate_of) return false;
    if (f.duplicate === 'false' && ev.duplicate_of) return false;
    if (f.mirror_diff === 'true' && !mirrorDiffers(ev)) return false;
    if (f.mirror_diff === 'false' && mirrorDiffers(ev)) return false;
    return true;
  }
  function known(v) { return v !== null && v !== undefined; }
  // As the server decides it (event.rs): a bin's status is its own answer.
  function mirrorDiffers(ev) {
    return ev.state !== 'captured' && known(ev.mirror_status) &&
      ev.mirror_status !== (known(ev.last_status) ? ev.last_status : null);
  }
  // The status cell: the target's last answer, then the mirror's (as
  // event_rows.html draws it).
  function fillStatus(td, ev) {
    td.textContent = known(ev.last_status) ? String(ev.last_status) : '';
    if (!known(ev.mirror_status)) return;
    var m = Number(ev.mirror_status);
    td.appendChild(document.createTextNode(' '));
    var span = el('span', 'mirror-status' + (mirrorDiffers(ev) ? ' differs' : ''), 'm\u00a0' + (m === 0 ? '\u2014' : String(m)));
    span.title = 'mirror answered ' + (m === 0 ? 'nothing' : String(m));
    td.appendChild(span);
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
  // Bidirectional controls shown, not obeyed, as the server-rendered rows
  // do (src/text.rs).
  function visible(s) {
    return String(s).replace(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, function (c) {
      return '\u27e8U+' + ('0000' + c.charCodeAt(0).toString(16).toUpperCase()).slice(-4) + '\u27e9';
    });
  }
  function target(ev) {
    var t = ev.path ? String(ev.path) : '/';
    if (ev.query !== null && ev.query !== undefined) t += '?' + String(ev.query);
    return visible(t);
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
    tr.appendChild(el('td', 'topic', visible(ev.topic || '')));
    var st = el('td', 'state');
    st.appendChild(stateBadge(ev));
    tr.appendChild(st);
    var statusTd = el('td', 'status');
    fillStatus(statusTd, ev);
    tr.appendChild(statusTd);
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
    if (status) fillStatus(status, ev);
    var sig = tr.querySelector('td.sig');
    if (sig) { sig.textContent = ''; sig.appendChild(verdictBadge(ev)); }
  }
  function apply(ev) {
    if (!ev || !ev.id) return;
    var existing = document.getElementById('ev-' + ev.id);
    if (existing) {
      updateRow(existing, ev);
      // Kept in view (a row vanishing under the pointer is worse) but
      // marked: a reload lists it no more.
      var gone = !matches(ev);
      existing.classList.toggle('unmatched', gone);
      if (gone) existing.title = 'no longer matches the filters (now ' + ev.state + ')';
      else existing.removeAttribute('title');
      return;
    }
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

// ---- a replay job's progress (/replay/<job>) ----
// Polls GET /api/replay/<job> every second while the job is queued or
// running; the server-rendered page and its Refresh link work without it.
(function () {
  var box = document.getElementById('job');
  if (!box || !window.fetch) return;
  var id = box.getAttribute('data-job');
  var STATES = ['queued', 'running', 'done', 'cancelled'];
  var live = document.getElementById('job-live');
  var failures = 0;
  function finished(s) { return s === 'done' || s === 'cancelled'; }
  function set(key, value) {
    var e = document.getElementById('job-' + key);
    if (e && value !== null && value !== undefined) e.textContent = String(value);
  }
  function note(text) { if (live) live.textContent = text; }
  function render(j) {
    ['total', 'sent', 'succeeded', 'failed', 'queued'].forEach(function (k) { set(k, j[k]); });
    // Rows shown only when they count something.
    ['already_delivered', 'skipped'].forEach(function (k) {
      set(k, j[k]);
      var rows = box.querySelectorAll('[data-row="' + k + '"]');
      for (var i = 0; i < rows.length; i++) rows[i].hidden = !(Number(j[k]) > 0);
    });
    var failed = document.getElementById('job-failed');
    if (failed) failed.className = Number(j.failed) > 0 ? 'bad' : '';
    var s = STATES.indexOf(j.status) >= 0 ? j.status : 'queued';
    var badge = box.querySelector('.job-state .badge');
    if (badge) { badge.className = 'badge job-' + s; badge.textContent = s; }
    box.setAttribute('data-status', s);
    var bar = document.getElementById('job-progress');
    if (bar) {
      bar.max = Math.max(1, Number(j.total) || 0);
      bar.value = Number(j.sent) || 0;
      bar.textContent = String(Number(j.sent) || 0) + ' of ' + String(Number(j.total) || 0);
    }
    var waiting = document.getElementById('job-waiting');
    if (waiting) {
      waiting.hidden = !j.waiting;
      waiting.textContent = j.waiting ? 'Waiting: ' + j.waiting : '';
    }
    if (finished(s)) {
      if (j.finished_at) set('finished', j.finished_at);
      var cancel = document.getElementById('job-cancel');
      if (cancel) cancel.hidden = true;
    }
  }
  function poll() {
    fetch('/api/replay/' + encodeURIComponent(id), {
      credentials: 'same-origin',
      headers: { accept: 'application/json' },
      cache: 'no-store'
    }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (j) {
      failures = 0;
      render(j);
      // A cancelled job may still count the replay it had in flight.
      if (finished(j.status) && j.finished_at) {
        note('finished');
      } else {
        note('live');
        setTimeout(poll, 1000);
      }
    }).catch(function () {
      failures += 1;
      note('updates failed — use Refresh');
      if (failures < 30) setTimeout(poll, 3000);
    });
  }
  if (!finished(box.getAttribute('data-status'))) {
    note('live');
    setTimeout(poll, 1000);
  }
})();
