// The agent page. No framework, no inline code (the CSP forbids it), nothing from elsewhere.
'use strict';
(function () {
  const T = {
    sv: {
      title: 'BankID-identifiering', logout: 'Logga ut', langSwitch: 'English', supervisorView: 'Arbetsledarvy',
      simTitle: 'Simulerat BankID — inga riktiga identiteter.',
      simText: 'Ingen BankID-anslutning är konfigurerad, så sidan använder en inbyggd simulator. Testpersoner:',
      pnrShort: 'Personnummer', name: 'Namn', behaviour: 'Vad som händer', use: 'Använd',
      loginTitle: 'Logga in', username: 'Användarnamn', password: 'Lösenord', login: 'Logga in',
      pnrLabel: 'Kundens personnummer', pnrHint: '10 eller 12 siffror, med eller utan bindestreck.',
      whoCalled: 'Vem ringde?', userCalled: 'Kunden ringde oss', weCalled: 'Vi ringde kunden',
      identify: 'Identifiera', pendingTitle: 'Identifiering pågår', callerSees: 'Kunden ser:',
      stepApp: 'Öppnar appen', stepConfirm: 'Bekräftar samtalet', stepCode: 'Säkerhetskod', stepDocument: 'ID-handling',
      whatTitle: 'Vad ska kunden göra?', modeIdentify: 'Identifiera sig', modeSign: 'Godkänna en text (skriva under)',
      textOptional: 'Text som visas i BankID-appen (valfri)', textToSign: 'Text som kunden godkänner',
      checksTitle: 'Extra kontroller', requirePin: 'Kräv säkerhetskod', requireIdDoc: 'Extra kontroll med ID-handling',
      idDocHint: 'Be kunden ha sitt pass eller nationella id-kort till hands.', sign: 'Skicka för underskrift',
      signedTitle: 'Kunden godkände texten:', signed: 'Texten är godkänd', needText: 'Skriv texten som kunden ska godkänna.',
      checksDone: 'Kontroller:', pinRequired: 'säkerhetskod krävdes', idDocChecked: 'ID-handling kontrollerad',
      idDocNotChecked: 'ID-handling inte kontrollerad', noChecks: 'inga extra kontroller',
      cancel: 'Avbryt', fraudTitle: 'Varning: möjligt bedrägeriförsök', identifiedAt: 'Identifierad',
      retry: 'Försök igen', newCaller: 'Ny kund', backend: 'BankID-tjänst:',
      complete: 'Identifierad', failed: 'Inte identifierad', error: 'Inget svar från BankID',
      loggedInAs: 'Inloggad som', typing: 'Fortsätt skriva: {n} av 10 eller 12 siffror.',
      ok: 'Giltigt personnummer.', forNumber: 'Personnummer {pnr}', calledBy: { user: 'kunden ringde', RP: 'vi ringde' },
      err: {
        empty: 'Skriv kundens personnummer.',
        bad_character: 'Bara siffror och ett bindestreck (eller +) är tillåtna.',
        wrong_length: 'Ett personnummer har 10 eller 12 siffror — nu är det {n}.',
        bad_separator: 'Bindestrecket ska stå före de fyra sista siffrorna (+ bara för 10 siffror).',
        invalid_date: 'Datumet i personnumret finns inte.',
        future_date: 'Datumet i personnumret ligger i framtiden.',
        bad_check_digit: 'Kontrollsiffran (den sista) stämmer inte — kontrollera numret med kunden.',
      },
      api: {
        bad_credentials: 'Fel användarnamn eller lösenord.',
        too_many_attempts: 'För många misslyckade inloggningar. Försök igen om {s} s.',
        too_many_identifications: 'För många identifieringar på kort tid. Försök igen om {s} s.',
        not_logged_in: 'Du är utloggad. Logga in igen.',
        busy: 'Tjänsten har för många identifieringar igång. Försök igen strax.',
        declined_recently: 'Personnumret nekade nyss ett BankID-samtal (möjligt bedrägeriförsök). Nya identifieringar för det är spärrade i {m} min till.',
        number_rate_limited: 'Personnumret har identifierats för många gånger den senaste timmen. Identifiera kunden på annat sätt.',
        network: 'Ingen kontakt med servern. Kontrollera anslutningen och försök igen.',
        other: 'Något gick fel ({code}).',
      },
    },
    en: {
      title: 'BankID identification', logout: 'Log out', langSwitch: 'Svenska', supervisorView: 'Supervisor view',
      simTitle: 'Simulated BankID — no real identities.',
      simText: 'No BankID connection is configured, so the page uses a built-in simulator. Test persons:',
      pnrShort: 'Personal number', name: 'Name', behaviour: 'What happens', use: 'Use',
      loginTitle: 'Log in', username: 'User name', password: 'Password', login: 'Log in',
      pnrLabel: "Caller's personal number", pnrHint: '10 or 12 digits, with or without a hyphen.',
      whoCalled: 'Who called?', userCalled: 'The caller called us', weCalled: 'We called the caller',
      identify: 'Identify', pendingTitle: 'Identification in progress', callerSees: 'The caller sees:',
      stepApp: 'Opening the app', stepConfirm: 'Confirming the call', stepCode: 'Security code', stepDocument: 'ID document',
      whatTitle: 'What should the caller do?', modeIdentify: 'Identify', modeSign: 'Approve a text (sign)',
      textOptional: 'Text shown in the BankID app (optional)', textToSign: 'Text the caller approves',
      checksTitle: 'Extra checks', requirePin: 'Require the security code', requireIdDoc: 'Extra check with an ID document',
      idDocHint: 'Ask the caller to have their passport or national ID card at hand.', sign: 'Send for signing',
      signedTitle: 'The caller approved the text:', signed: 'Text approved', needText: 'Write the text the caller is to approve.',
      checksDone: 'Checks:', pinRequired: 'security code required', idDocChecked: 'ID document checked',
      idDocNotChecked: 'ID document not checked', noChecks: 'no extra checks',
      cancel: 'Cancel', fraudTitle: 'Warning: possible fraud attempt', identifiedAt: 'Identified',
      retry: 'Try again', newCaller: 'New caller', backend: 'BankID service:',
      complete: 'Identified', failed: 'Not identified', error: 'No answer from BankID',
      loggedInAs: 'Logged in as', typing: 'Keep typing: {n} of 10 or 12 digits.',
      ok: 'Valid personal number.', forNumber: 'Personal number {pnr}', calledBy: { user: 'the caller called', RP: 'we called' },
      err: {
        empty: "Type the caller's personal number.",
        bad_character: 'Only digits and one hyphen (or +) are allowed.',
        wrong_length: 'A personal number has 10 or 12 digits — this has {n}.',
        bad_separator: 'The hyphen goes before the last four digits (+ only with 10 digits).',
        invalid_date: 'The date in the personal number does not exist.',
        future_date: 'The date in the personal number lies in the future.',
        bad_check_digit: 'The check digit (the last one) does not match — check the number with the caller.',
      },
      api: {
        bad_credentials: 'Wrong user name or password.',
        too_many_attempts: 'Too many failed logins. Try again in {s} s.',
        too_many_identifications: 'Too many identifications in a short time. Try again in {s} s.',
        not_logged_in: 'You are logged out. Log in again.',
        busy: 'The service has too many identifications running. Try again shortly.',
        declined_recently: 'This personal number just declined a BankID call (possible fraud attempt). New identifications for it are blocked for {m} more min.',
        number_rate_limited: 'This personal number was identified too many times in the last hour. Identify the caller another way.',
        network: 'No contact with the server. Check the connection and try again.',
        other: 'Something went wrong ({code}).',
      },
    },
  };

  // ---- personal numbers: the same rules as the server (bankid::personnummer) ----
  function daysInMonth(y, m) {
    const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
    if ([1, 3, 5, 7, 8, 10, 12].includes(m)) return 31;
    if ([4, 6, 9, 11].includes(m)) return 30;
    if (m === 2) return leap ? 29 : 28;
    return 0;
  }
  function num(ds) { return ds.reduce((a, d) => a * 10 + d, 0); }
  function cmpDate(a, b) { return a[0] - b[0] || a[1] - b[1] || a[2] - b[2]; }
  function todayUtc() { const n = new Date(); return [n.getUTCFullYear(), n.getUTCMonth() + 1, n.getUTCDate()]; }

  // → {ok: true, digits: '12 digits'} or {ok: false, code, count}
  function validatePnr(input, today) {
    today = today || todayUtc();
    const s = String(input).trim();
    if (s === '') return { ok: false, code: 'empty', count: 0 };
    const digits = [];
    let sep = null;
    for (const c of s) {
      if (c >= '0' && c <= '9') digits.push(c.charCodeAt(0) - 48);
      else if ((c === '-' || c === '+') && sep === null) sep = { pos: digits.length, c };
      else if (c === '-' || c === '+') return { ok: false, code: 'bad_separator', count: digits.length };
      else return { ok: false, code: 'bad_character', count: digits.length };
    }
    const n = digits.length;
    if (n !== 10 && n !== 12) return { ok: false, code: 'wrong_length', count: n };
    if (sep && (sep.pos !== n - 4 || (n === 12 && sep.c === '+'))) return { ok: false, code: 'bad_separator', count: n };
    let full = digits;
    if (n === 10) {
      let year = Math.floor(today[0] / 100) * 100 + num(digits.slice(0, 2));
      let day = num(digits.slice(4, 6));
      if (day > 60) day -= 60;
      if (cmpDate([year, num(digits.slice(2, 4)), day], today) > 0) year -= 100;
      if (sep && sep.c === '+') year -= 100;
      full = [Math.floor(year / 1000), Math.floor(year / 100) % 10].concat(digits);
    }
    const y = num(full.slice(0, 4)), m = num(full.slice(4, 6));
    let d = num(full.slice(6, 8));
    if (d > 60) d -= 60;
    if (y < 1800 || d === 0 || d > daysInMonth(y, m)) return { ok: false, code: 'invalid_date', count: n };
    let sum = 0;
    for (let i = 0; i < 9; i++) {
      const p = full[2 + i] * (i % 2 === 0 ? 2 : 1);
      sum += Math.floor(p / 10) + (p % 10);
    }
    if ((10 - (sum % 10)) % 10 !== full[11]) return { ok: false, code: 'bad_check_digit', count: n };
    if (cmpDate([y, m, d], today) > 0) return { ok: false, code: 'future_date', count: n };
    return { ok: true, digits: full.join('') };
  }

  // ---- state ----
  let lang = (localStorage.getItem('bankid-agent-lang') === 'en') ? 'en' : 'sv';
  let session = null;      // {loggedIn, agent, csrf, simulated, testPersons, backend}
  let current = null;      // the order being shown
  let last = null;         // {personalNumber, callInitiator, options} of the last start, for "Försök igen"
  let pollTimer = null;

  const $ = (id) => document.getElementById(id);
  const tr = (key) => key.split('.').reduce((o, k) => (o ? o[k] : undefined), T[lang]);
  const fill = (text, vars) => String(text).replace(/\{(\w+)\}/g, (_, k) => (vars && k in vars ? vars[k] : ''));
  function show(el, on) { el.hidden = !on; }

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.title = tr('title');
    document.querySelectorAll('[data-t]').forEach((el) => { el.textContent = tr(el.dataset.t); });
    $('lang').textContent = tr('langSwitch');
    $('lang').lang = lang === 'sv' ? 'en' : 'sv';
    renderFormMode();
    renderPersons();
    renderWho();
    if (!$('identify-view').hidden) validateLive(false);
    if (current) renderOrder(current);
  }

  function renderWho() {
    if (session && session.loggedIn) { $('who').textContent = tr('loggedInAs') + ' ' + session.agent; }
    renderSupervisorLink();
  }

  // Only a supervisor's page has the link at all: an agent's page holds no trace of it.
  function renderSupervisorLink() {
    const have = $('supervisor-link');
    const want = !!(session && session.loggedIn && session.role === 'supervisor');
    if (want && !have) {
      const a = document.createElement('a');
      a.id = 'supervisor-link'; a.href = 'supervisor';
      $('logout').before(a);
    }
    if (!want && have) have.remove();
    if (want) $('supervisor-link').textContent = tr('supervisorView');
  }

  function renderPersons() {
    const body = document.querySelector('#persons tbody');
    body.textContent = '';
    if (!session || !session.testPersons) return;
    for (const p of session.testPersons) {
      const row = document.createElement('tr');
      const pnr = p.personalNumber.slice(0, 8) + '-' + p.personalNumber.slice(8);
      for (const text of [pnr, p.name, p.behaviour[lang]]) {
        const td = document.createElement('td'); td.textContent = text; row.appendChild(td);
      }
      const td = document.createElement('td');
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'link use-person'; b.textContent = tr('use');
      b.dataset.pnr = pnr;
      b.addEventListener('click', () => {
        if ($('identify-view').hidden) return;
        startClean(); $('pnr').value = pnr; validateLive(true); $('pnr').focus();
      });
      td.appendChild(b); row.appendChild(td);
      body.appendChild(row);
    }
  }

  // ---- server calls ----
  // Paths are relative to the page (`/`, or `/bankid/` with --base-path /bankid), so the page
  // works under whatever base path it is served from.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && session && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    let resp;
    try {
      resp = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { ok: false, status: 0, data: { error: 'network' } };
    }
    let data = {};
    try { data = await resp.json(); } catch (e) { data = { error: 'http_' + resp.status }; }
    if (resp.status === 401 && path !== 'api/login') { loggedOut(); }
    return { ok: resp.ok, status: resp.status, data };
  }

  function apiMessage(data) {
    const text = tr('api.' + data.error);
    if (text) return fill(text, { s: data.retryAfterS || '', m: Math.ceil((data.retryAfterS || 0) / 60) });
    if (data.error === 'invalid_personal_number') return fill(tr('err.' + data.reason) || data.message, {});
    return fill(tr('api.other'), { code: data.error || '?' });
  }

  async function loadSession() {
    const r = await api('GET', 'api/session');
    if (!r.ok) { $('backend').textContent = '?'; return; }
    session = r.data;
    $('backend').textContent = session.backend;
    show($('sim-banner'), session.simulated);
    renderPersons();
    if (session.loggedIn) loggedIn(); else loggedOut();
  }

  function loggedIn() {
    show($('login-view'), false);
    show($('identify-view'), true);
    show($('who'), true); show($('logout'), true);
    renderWho(); renderPersons();
    startClean();
    $('pnr').focus();
  }

  function loggedOut() {
    stopPolling();
    current = null; last = null;
    if (session) { session.loggedIn = false; session.csrf = null; session.agent = null; }
    show($('identify-view'), false);
    show($('login-view'), true);
    show($('who'), false); show($('logout'), false);
    renderSupervisorLink();
    $('password').value = '';
    $('username').focus();
  }

  // ---- login ----
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('login-error');
    show(err, false);
    $('login-button').disabled = true;
    const r = await api('POST', 'api/login', { username: $('username').value, password: $('password').value });
    $('login-button').disabled = false;
    if (!r.ok) { err.textContent = apiMessage(r.data); show(err, true); $('password').value = ''; return; }
    session = r.data;
    loggedIn();
  });

  $('logout').addEventListener('click', async () => {
    await api('POST', 'api/logout', {});
    loggedOut();
  });

  $('lang').addEventListener('click', () => {
    lang = lang === 'sv' ? 'en' : 'sv';
    localStorage.setItem('bankid-agent-lang', lang);
    applyLanguage();
  });

  // ---- identification ----
  function validateLive(final) {
    const input = $('pnr');
    const hint = $('pnr-hint');
    const v = validatePnr(input.value);
    hint.classList.remove('error', 'ok');
    input.removeAttribute('aria-invalid');
    if (v.ok) {
      hint.textContent = tr('ok'); hint.classList.add('ok'); hint.dataset.code = 'ok';
    } else if (!final && stillTyping(input.value, v)) {
      const n = input.value.replace(/[^0-9]/g, '').length;
      hint.textContent = v.code === 'empty' ? tr('pnrHint') : fill(tr('typing'), { n });
      hint.dataset.code = 'typing';
    } else {
      hint.textContent = fill(tr('err.' + v.code), { n: v.count });
      hint.classList.add('error'); hint.dataset.code = v.code;
      input.setAttribute('aria-invalid', 'true');
    }
    return v;
  }
  // While the agent types, an unfinished number is not an error: fewer than 12 digits that may
  // still become a 12-digit number (19… or 20…, no separator yet) only get a neutral hint.
  function stillTyping(raw, v) {
    if (v.code === 'empty') return true;
    const s = raw.trim();
    const digits = s.replace(/[^0-9]/g, '');
    if (v.code === 'wrong_length') return v.count < 12;
    const couldGrow = /^[0-9]+$/.test(s) && digits.length < 12 && /^(19|20)/.test(digits);
    return couldGrow && ['invalid_date', 'bad_check_digit', 'future_date'].includes(v.code);
  }
  $('pnr').addEventListener('input', () => validateLive(false));
  $('pnr').addEventListener('blur', () => { if ($('pnr').value.trim() !== '') validateLive(true); });

  function initiator() {
    const c = document.querySelector('input[name="initiator"]:checked');
    return c ? c.value : 'user';
  }

  function formOptions() {
    const c = document.querySelector('input[name="mode"]:checked');
    const text = $('visible-text').value.trim();
    return {
      mode: c ? c.value : 'identify',
      userVisibleData: text === '' ? undefined : text,
      requirePinCode: $('require-pin').checked,
      requireIdDocument: $('require-iddoc').checked,
    };
  }
  // The label, the button and the hint follow the chosen mode and checks.
  function renderFormMode() {
    const sign = formOptions().mode === 'sign';
    $('visible-text-label').textContent = tr(sign ? 'textToSign' : 'textOptional');
    $('visible-text').required = sign;
    $('identify').textContent = tr(sign ? 'sign' : 'identify');
    show($('iddoc-hint'), $('require-iddoc').checked);
  }
  document.querySelectorAll('input[name="mode"]').forEach((el) => el.addEventListener('change', renderFormMode));
  $('require-iddoc').addEventListener('change', renderFormMode);

  async function start(personalNumber, callInitiator, options) {
    const err = $('identify-error');
    show(err, false);
    if (options.mode === 'sign' && !options.userVisibleData) {
      err.textContent = tr('needText'); show(err, true); $('visible-text').focus();
      return;
    }
    $('identify').disabled = true;
    const r = await api('POST', 'api/identify', Object.assign({ personalNumber, callInitiator }, options));
    $('identify').disabled = false;
    if (!r.ok) {
      if (r.status === 401) return;
      err.textContent = apiMessage(r.data); show(err, true);
      show($('identify-form'), true); show($('result'), false); show($('status'), false);
      return;
    }
    last = { personalNumber, callInitiator, options };
    current = r.data;
    show($('identify-form'), false);
    renderOrder(current);
    schedulePoll();
  }

  $('identify-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = validateLive(true);
    if (!v.ok) { $('pnr').focus(); return; }
    start($('pnr').value, initiator(), formOptions());
  });

  $('cancel').addEventListener('click', async () => {
    if (!current) return;
    $('cancel').disabled = true;
    const r = await api('POST', 'api/orders/' + encodeURIComponent(current.id) + '/cancel', {});
    $('cancel').disabled = false;
    if (r.ok) { current = r.data; renderOrder(current); }
  });

  $('retry').addEventListener('click', () => { if (last) start(last.personalNumber, last.callInitiator, last.options); });
  $('new-caller').addEventListener('click', () => { startClean(); $('pnr').focus(); });

  // A new caller: nothing of the previous one stays on screen or in memory.
  function startClean() {
    stopPolling();
    current = null; last = null;
    $('identify-form').reset();
    show($('identify-form'), true);
    show($('status'), false); show($('result'), false); show($('identify-error'), false);
    validateLive(false);
    renderFormMode();
  }

  function stopPolling() { if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; } }
  function schedulePoll() {
    stopPolling();
    if (!current || current.state !== 'pending') return;
    pollTimer = setTimeout(async () => {
      pollTimer = null;
      if (!current) return;
      const id = current.id;
      const r = await api('GET', 'api/orders/' + encodeURIComponent(id));
      if (!current || current.id !== id) return;
      if (r.ok) { current = r.data; renderOrder(current); }
      schedulePoll();
    }, 500);
  }

  function renderOrder(o) {
    const pending = o.state === 'pending';
    show($('status'), pending);
    show($('result'), !pending);
    $('status').dataset.step = o.step || '';
    $('result').dataset.state = o.state;
    const who = fill(tr('forNumber'), { pnr: o.personalNumberMasked }) + ' · ' + (tr('calledBy')[o.callInitiator] || '');
    if (pending) {
      $('status-agent').textContent = o.agentText[lang];
      $('status-caller').textContent = o.callerMessage[lang];
      $('status-pnr').textContent = who;
      document.querySelectorAll('#status .steps li').forEach((li) => {
        li.classList.toggle('active', li.dataset.step === o.step);
      });
      return;
    }
    $('result-title').textContent = o.state === 'complete' && o.mode === 'sign' ? tr('signed') : tr(o.state);
    const signed = o.state === 'complete' && typeof o.signedText === 'string';
    show($('signed'), signed);
    $('signed-text').textContent = signed ? o.signedText : '';
    const c = o.checks || {};
    const done = [];
    if (c.pinCodeRequired) done.push(tr('pinRequired'));
    if (c.idDocumentRequired) done.push(tr(c.idDocumentChecked ? 'idDocChecked' : 'idDocNotChecked'));
    show($('checks'), o.state === 'complete');
    $('checks').textContent = tr('checksDone') + ' ' + (done.length ? done.join(' · ') : tr('noChecks'));
    $('checks').dataset.idDocument = c.idDocumentChecked ? 'checked' : 'no';
    $('checks').dataset.pinCode = c.pinCodeRequired ? 'required' : 'no';
    $('result-agent').textContent = o.agentText[lang];
    show($('fraud'), !!o.fraudWarning);
    const p = o.person;
    show($('person'), !!p);
    if (p) {
      $('person-name').textContent = p.name;
      $('person-pnr').textContent = p.personalNumber;
      const at = new Date(o.finishedAtMs || Date.now());
      $('person-time').textContent = at.toLocaleString(lang === 'sv' ? 'sv-SE' : 'en-GB');
    }
    $('result-meta').textContent = p ? '' : who;
    show($('retry'), o.state !== 'complete');
  }

  window.bankidAgent = { validatePnr };
  applyLanguage();
  loadSession();
})();
