// The supervisor view. No framework, no inline code (the CSP forbids it), nothing from
// elsewhere; the charts are SVG images drawn by the server. A personal number to look up goes
// in a POST body only, never in a URL.
'use strict';
(function () {
  const T = {
    sv: {
      title: 'BankID – arbetsledarvy', toAgent: 'Till identifieringen', logout: 'Logga ut', langSwitch: 'English',
      loggedInAs: 'Inloggad som',
      recordsOff: 'Registreringen är avstängd på den här servern (audit_database = "off"): det finns inga poster att visa.',
      chartsTitle: 'Så går identifieringarna', range24h: 'Senaste dygnet', range7d: 'Senaste 7 dagarna',
      total: 'Identifieringar', successRate: 'Lyckade', median: 'Mediantid', p90: '90 % klara inom', declined: 'Nekade samtal',
      truncated: 'Fler poster än diagrammen räknar: de visar de senaste 200 000.',
      perHour: 'Per timme efter utfall', complete: 'Identifierad', failed: 'Misslyckad', error: 'Fel',
      declinedLegend: 'Nekat samtal (möjligt bedrägeri)', declinedOne: 'Nekat samtal',
      timeTitle: 'Tid att identifiera', medianLine: 'Median', p90Line: '90:e percentilen',
      reasonsTitle: 'Misslyckanden efter orsak', declinedTitle: 'Nekade samtal – möjliga bedrägeriförsök',
      noDeclined: 'Inga nekade samtal under perioden.',
      recordsTitle: 'Poster', from: 'Från', to: 'Till', outcome: 'Utfall', channel: 'Kanal', agent: 'Agent',
      pnr: 'Personnummer', any: 'Alla', search: 'Sök', export: 'Exportera CSV', clear: 'Rensa',
      finished: 'Klar', agentOrCall: 'Agent / samtal', reason: 'Orsak', duration: 'Tid',
      noRecords: 'Inga poster matchar.', more: 'Visa fler',
      detailTitle: 'Post', close: 'Stäng', noEvidence: 'Inget underlag sparat för den här posten.',
      download: 'Ladda ner underlaget (JSON)', downloadNote: 'Nedladdningen registreras med ditt namn.',
      eventsTitle: 'Händelser', noEvents: 'Inga händelser.',
      footer: 'Personnummer visas maskerade; sökning sker med en nyckelad pseudonym.',
      ch: { agent: 'Agentsidan', fastagi: 'IVR (FastAGI)', identify: 'IVR (identify)', 'c-abi': 'IVR (bibliotek)', 'flow-run': 'flow run' },
      f: {
        id: 'Post-id', startedAtMs: 'Startad', finishedAtMs: 'Klar', durationMs: 'Tid', channel: 'Kanal', agent: 'Agent',
        callId: 'Samtals-id', callerId: 'Nummerpresentation', host: 'Värd', mode: 'Typ', callInitiator: 'Vem ringde',
        outcome: 'Utfall', hintCode: 'BankID-kod', errorCode: 'Felkod', orderRef: 'orderRef', personalNumberMasked: 'Personnummer',
      },
      act: {
        login: 'loggade in', 'login-failed': 'misslyckad inloggning', logout: 'loggade ut',
        'identify-started': 'startade identifiering', 'identify-cancelled': 'avbröt identifieringen',
        'evidence-downloaded': 'laddade ner underlaget', 'records-exported': 'exporterade poster',
      },
      api: {
        invalid_personal_number: 'Personnumret är inte giltigt: {m}',
        bad_request: 'Felaktigt urval: {m}',
        store_unavailable: 'Databasen svarar inte just nu. Försök igen strax.',
        no_evidence: 'Inget underlag sparat för den här posten.',
        network: 'Ingen kontakt med servern.',
        other: 'Något gick fel ({code}).',
      },
      none: '–', seconds: '{n} s',
    },
    en: {
      title: 'BankID – supervisor view', toAgent: 'To identification', logout: 'Log out', langSwitch: 'Svenska',
      loggedInAs: 'Logged in as',
      recordsOff: 'Records are off on this server (audit_database = "off"): there are no records to show.',
      chartsTitle: 'How identification goes', range24h: 'Last 24 hours', range7d: 'Last 7 days',
      total: 'Identifications', successRate: 'Successful', median: 'Median time', p90: '90 % done within', declined: 'Declined calls',
      truncated: 'More records than the charts count: they show the newest 200 000.',
      perHour: 'Per hour by outcome', complete: 'Identified', failed: 'Failed', error: 'Error',
      declinedLegend: 'Declined call (possible fraud)', declinedOne: 'Declined call',
      timeTitle: 'Time to identify', medianLine: 'Median', p90Line: '90th percentile',
      reasonsTitle: 'Failures by reason', declinedTitle: 'Declined calls – possible fraud attempts',
      noDeclined: 'No declined calls in this period.',
      recordsTitle: 'Records', from: 'From', to: 'To', outcome: 'Outcome', channel: 'Channel', agent: 'Agent',
      pnr: 'Personal number', any: 'Any', search: 'Search', export: 'Export CSV', clear: 'Clear',
      finished: 'Finished', agentOrCall: 'Agent / call', reason: 'Reason', duration: 'Time',
      noRecords: 'No records match.', more: 'Show more',
      detailTitle: 'Record', close: 'Close', noEvidence: 'No evidence kept for this record.',
      download: 'Download the evidence (JSON)', downloadNote: 'The download is recorded with your name.',
      eventsTitle: 'Events', noEvents: 'No events.',
      footer: 'Personal numbers are shown masked; lookups use a keyed pseudonym.',
      ch: { agent: 'Agent page', fastagi: 'IVR (FastAGI)', identify: 'IVR (identify)', 'c-abi': 'IVR (library)', 'flow-run': 'flow run' },
      f: {
        id: 'Record id', startedAtMs: 'Started', finishedAtMs: 'Finished', durationMs: 'Time', channel: 'Channel', agent: 'Agent',
        callId: 'Call id', callerId: 'Caller ID', host: 'Host', mode: 'Kind', callInitiator: 'Who called',
        outcome: 'Outcome', hintCode: 'BankID code', errorCode: 'Error code', orderRef: 'orderRef', personalNumberMasked: 'Personal number',
      },
      act: {
        login: 'logged in', 'login-failed': 'failed login', logout: 'logged out',
        'identify-started': 'started an identification', 'identify-cancelled': 'cancelled the identification',
        'evidence-downloaded': 'downloaded the evidence', 'records-exported': 'exported records',
      },
      api: {
        invalid_personal_number: 'The personal number is not valid: {m}',
        bad_request: 'Bad filter: {m}',
        store_unavailable: 'The database is not answering. Try again shortly.',
        no_evidence: 'No evidence kept for this record.',
        network: 'No contact with the server.',
        other: 'Something went wrong ({code}).',
      },
      none: '–', seconds: '{n} s',
    },
  };

  let lang = (localStorage.getItem('bankid-agent-lang') === 'en') ? 'en' : 'sv';
  let session = null;
  let range = '24h';
  let next = null;          // the cursor of the next page of records
  let shownFilter = null;   // the filter of the records shown (for "more" and the export)
  let detailId = null;
  let lastStats = null;

  const $ = (id) => document.getElementById(id);
  const tr = (key) => key.split('.').reduce((o, k) => (o ? o[k] : undefined), T[lang]);
  const fill = (text, vars) => String(text).replace(/\{(\w+)\}/g, (_, k) => (vars && k in vars ? vars[k] : ''));
  function show(el, on) { el.hidden = !on; }
  const tz = () => -new Date().getTimezoneOffset();
  const when = (ms) => new Date(ms).toLocaleString(lang === 'sv' ? 'sv-SE' : 'en-GB');
  const secs = (ms) => (ms === null || ms === undefined) ? tr('none') : fill(tr('seconds'), { n: (ms / 1000).toFixed(1) });
  const outcomeText = (o) => tr(o === 'declined' ? 'declinedOne' : o) || o || '?';

  async function api(method, path, body, raw) {
    const headers = { Accept: raw ? '*/*' : 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && session && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    let resp;
    try {
      resp = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { ok: false, status: 0, data: { error: 'network' } };
    }
    if (resp.status === 401) { window.location.assign('./'); return { ok: false, status: 401, data: {} }; }
    if (raw && resp.ok) return { ok: true, status: resp.status, resp };
    let data = {};
    try { data = await resp.json(); } catch (e) { data = { error: 'http_' + resp.status }; }
    return { ok: resp.ok, status: resp.status, data };
  }

  function apiMessage(data) {
    const text = tr('api.' + data.error);
    return fill(text || tr('api.other'), { m: data.message || '', code: data.error || '?' });
  }

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.title = tr('title');
    document.querySelectorAll('[data-t]').forEach((el) => { el.textContent = tr(el.dataset.t); });
    $('lang').textContent = tr('langSwitch');
    $('lang').lang = lang === 'sv' ? 'en' : 'sv';
    if (session) $('who').textContent = tr('loggedInAs') + ' ' + session.agent;
    loadCharts();
    if (lastRecords) renderRecords(lastRecords, false);
    if (detailId) openDetail(detailId);
  }

  // ---- charts ----
  async function loadCharts() {
    if (!session || !session.records) return;
    const q = 'range=' + range + '&tz=' + tz() + '&lang=' + lang;
    document.querySelectorAll('.range button').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.range === range)));
    for (const name of ['hourly', 'durations', 'reasons']) {
      const img = $('chart-' + name);
      img.alt = tr(name === 'hourly' ? 'perHour' : name === 'durations' ? 'timeTitle' : 'reasonsTitle');
      img.src = 'api/supervisor/charts/' + name + '.svg?' + q;
    }
    const r = await api('GET', 'api/supervisor/stats?' + q);
    if (!r.ok) return;
    lastStats = r.data;
    const s = r.data;
    $('stat-total').textContent = String(s.total);
    $('stat-success').textContent = s.successRate === null ? tr('none') : Math.round(s.successRate * 1000) / 10 + ' %';
    $('stat-median').textContent = secs(s.medianMs);
    $('stat-p90').textContent = secs(s.p90Ms);
    $('stat-declined').textContent = String(s.declined);
    $('charts').dataset.range = s.range;
    $('charts').dataset.total = String(s.total);
    show($('truncated'), !!s.truncated);
    const list = $('declined-list');
    list.textContent = '';
    for (const rec of s.declinedCalls) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'link'; b.dataset.id = rec.id;
      b.textContent = when(rec.finishedAtMs) + ' · ' + rec.personalNumberMasked + ' · ' + (tr('ch.' + rec.channel) || rec.channel) +
        (rec.agent ? ' · ' + rec.agent : '') + (rec.callerId ? ' · ' + rec.callerId : '');
      b.addEventListener('click', () => openDetail(rec.id));
      li.appendChild(b); list.appendChild(li);
    }
    show($('no-declined'), s.declinedCalls.length === 0);
  }
  document.querySelectorAll('.range button').forEach((b) => b.addEventListener('click', () => { range = b.dataset.range; loadCharts(); }));

  // ---- records ----
  function toMs(input) {
    if (!input.value) return undefined;
    const ms = new Date(input.value).getTime();
    return Number.isNaN(ms) ? undefined : ms;
  }
  function currentFilter() {
    const f = {
      fromMs: toMs($('f-from')), toMs: toMs($('f-to')),
      outcome: $('f-outcome').value, channel: $('f-channel').value,
      agent: $('f-agent').value.trim(), personalNumber: $('f-pnr').value.trim(),
    };
    return f;
  }
  let lastRecords = null;

  function renderRecords(records, append) {
    const body = document.querySelector('#record-table tbody');
    if (!append) body.textContent = '';
    for (const rec of records) {
      const row = document.createElement('tr');
      row.dataset.id = rec.id; row.dataset.outcome = rec.outcome || rec.state; row.dataset.channel = rec.channel;
      if (rec.outcome === 'declined') row.className = 'declined';
      const cells = [
        when(rec.finishedAtMs), tr('ch.' + rec.channel) || rec.channel,
        rec.agent || rec.callId || rec.callerId || '', rec.personalNumberMasked, outcomeText(rec.outcome || rec.state),
        rec.outcome === 'complete' ? '' : (rec.hintCode || rec.errorCode || ''), secs(rec.durationMs),
      ];
      for (const text of cells) { const td = document.createElement('td'); td.textContent = text; row.appendChild(td); }
      row.tabIndex = 0;
      row.addEventListener('click', () => openDetail(rec.id));
      row.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') openDetail(rec.id); });
      body.appendChild(row);
    }
    show($('no-records'), body.children.length === 0);
  }

  async function search(append) {
    const err = $('filter-error');
    show(err, false);
    if (!append) { shownFilter = currentFilter(); next = null; }
    const body = Object.assign({}, shownFilter, append && next ? { before: next } : {});
    const r = await api('POST', 'api/supervisor/records', body);
    if (!r.ok) { err.textContent = apiMessage(r.data); show(err, true); return; }
    lastRecords = append ? (lastRecords || []).concat(r.data.records) : r.data.records;
    renderRecords(r.data.records, append);
    next = r.data.next;
    show($('more'), !!next);
    $('records').dataset.count = String(document.querySelectorAll('#record-table tbody tr').length);
  }
  $('filter').addEventListener('submit', (ev) => { ev.preventDefault(); search(false); });
  $('more').addEventListener('click', () => search(true));
  $('clear').addEventListener('click', () => { $('filter').reset(); defaultRange(); search(false); });

  function filenameOf(resp, fallback) {
    const d = resp.headers.get('Content-Disposition') || '';
    const m = /filename="([^"]+)"/.exec(d);
    return m ? m[1] : fallback;
  }
  function save(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url; a.download = name; a.hidden = true;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
    window.bankidSupervisor.lastDownload = name;
  }

  $('export').addEventListener('click', async () => {
    const err = $('filter-error');
    show(err, false);
    const r = await api('POST', 'api/supervisor/export', currentFilter(), true);
    if (!r.ok) { err.textContent = apiMessage(r.data); show(err, true); return; }
    save(await r.resp.blob(), filenameOf(r.resp, 'bankid-records.csv'));
  });

  // ---- one record ----
  async function openDetail(id) {
    const r = await api('GET', 'api/supervisor/records/' + encodeURIComponent(id));
    if (!r.ok) return;
    detailId = id;
    const rec = r.data.record;
    const dl = $('detail-fields');
    dl.textContent = '';
    const value = (k) => {
      const v = k === 'outcome' ? outcomeText(rec.outcome || rec.state) : rec[k];
      if (v === null || v === undefined || v === '') return tr('none');
      if (k === 'startedAtMs' || k === 'finishedAtMs') return when(v);
      if (k === 'durationMs') return secs(v);
      if (k === 'channel') return tr('ch.' + v) || v;
      return String(v);
    };
    for (const k of Object.keys(T.sv.f)) {
      const dt = document.createElement('dt'); dt.textContent = tr('f.' + k);
      const dd = document.createElement('dd'); dd.textContent = value(k); dd.dataset.field = k;
      dl.appendChild(dt); dl.appendChild(dd);
    }
    const d = $('detail');
    d.dataset.id = id; d.dataset.outcome = rec.outcome || rec.state;
    d.classList.toggle('declined', rec.outcome === 'declined');
    show($('download'), r.data.hasEvidence); show($('download-note'), r.data.hasEvidence);
    show($('detail-no-evidence'), !r.data.hasEvidence);
    const events = $('detail-events');
    events.textContent = '';
    for (const e of r.data.events) {
      const li = document.createElement('li');
      li.dataset.action = e.action;
      li.textContent = when(e.atMs) + ' · ' + e.agent + ' ' + (tr('act.' + e.action) || e.action) + (e.remote ? ' (' + e.remote + ')' : '');
      events.appendChild(li);
    }
    if (r.data.events.length === 0) { const li = document.createElement('li'); li.textContent = tr('noEvents'); events.appendChild(li); }
    show(d, true);
    d.scrollIntoView({ block: 'nearest' });
  }
  $('close-detail').addEventListener('click', () => { detailId = null; show($('detail'), false); });
  $('download').addEventListener('click', async () => {
    if (!detailId) return;
    const id = detailId;
    const r = await api('POST', 'api/supervisor/records/' + encodeURIComponent(id) + '/evidence', {}, true);
    if (!r.ok) return;
    save(await r.resp.blob(), filenameOf(r.resp, 'bankid-evidence.json'));
    openDetail(id);  // the download is now among its events
  });

  // ---- session ----
  function localInput(ms) {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
  }
  function defaultRange() { $('f-from').value = localInput(Date.now() - 7 * 86400000); $('f-to').value = ''; }

  $('logout').addEventListener('click', async () => {
    await api('POST', 'api/logout', {});
    window.location.assign('./');
  });
  $('lang').addEventListener('click', () => {
    lang = lang === 'sv' ? 'en' : 'sv';
    localStorage.setItem('bankid-agent-lang', lang);
    applyLanguage();
  });

  async function init() {
    const r = await api('GET', 'api/session');
    if (!r.ok || !r.data.loggedIn || r.data.role !== 'supervisor') { window.location.assign('./'); return; }
    session = r.data;
    show($('records-off'), !session.records);
    show($('charts'), session.records); show($('records'), session.records);
    defaultRange();
    applyLanguage();
    if (session.records) search(false);
    document.body.dataset.ready = 'true';
  }

  window.bankidSupervisor = { lastDownload: null };
  init();
})();
