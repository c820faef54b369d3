/* kiosk.js - the payment kiosk (index.html): amount keypad, POST /v1/sessions for a liveness
 * challenge, a few seconds of camera frames posted to POST /v1/payments with live guidance, then the
 * receipt, the decline or the PIN step-up (POST /v1/payments/{id}/stepup). The server decides;
 * guidance here only helps the customer do what the challenge asks.
 * Query parameters (tests, set-up): key, terminal, currency, merchantName, challenge (test servers
 * only), seconds (capture length, 7), fps (25). */
'use strict';

(() => {
  const { $, api, money } = FP;
  let settings = FP.loadSettings();
  /* 25 frames/s as the API asks (short blinks fall between frames at lower rates); 200 frames is the
   * server's default limit per request */
  const SECONDS = FP.num('seconds', 7), FPS = FP.num('fps', 25), MAX_FRAMES = 200;
  const video = $('#video'), guide = $('#guide'), bar = $('#progress-bar');
  let digits = '', pinDigits = '', payment = null, capture = null, resultTimer = 0, cameraOk = false;

  /* ---- screens ---- */
  function show(name) {
    for (const s of document.querySelectorAll('.screen')) s.hidden = s.id !== 'screen-' + name;
    const first = $('#screen-' + name + ' button:not([hidden])');
    if (name !== 'amount' && first) first.focus();
    document.body.dataset.screen = name; /* for the end-to-end test */
  }
  function setGuide(text, kind = '') { guide.textContent = text; guide.className = 'guide ' + kind; }
  function updateWhere() {
    $('#where').textContent = settings.terminal
      ? `${settings.merchantName || 'Merchant'} · terminal ${settings.terminal}` : 'Not configured: open Settings';
  }

  /* ---- amount ---- */
  function renderAmount() {
    $('#amount').textContent = money(Number(digits || 0), settings.currency);
    $('#pay').disabled = !Number(digits);
  }
  function keyAmount(k) {
    if (k === 'C') digits = '';
    else if (k === 'back') digits = digits.slice(0, -1);
    else if (/^\d$/.test(k) && digits.length < 9) digits = (digits + k).replace(/^0+/, '');
    renderAmount();
  }
  $('#amount-keys').addEventListener('click', (e) => { if (e.target.dataset.key) keyAmount(e.target.dataset.key); });
  document.addEventListener('keydown', (e) => {
    if ($('#settings').open) return;
    const screen = document.body.dataset.screen;
    const k = e.key === 'Backspace' ? 'back' : e.key === 'Escape' ? 'C' : e.key;
    if (screen === 'amount') {
      if (e.key === 'Enter' && Number(digits)) { e.preventDefault(); pay(); }
      else if (/^\d$|^back$|^C$/.test(k)) keyAmount(k);
    } else if (screen === 'pin') {
      if (e.key === 'Enter') { e.preventDefault(); submitPin(); }
      else if (/^\d$|^back$|^C$/.test(k)) keyPin(k);
    }
  });

  /* ---- settings ---- */
  const dlg = $('#settings'), form = $('#settings-form');
  function openSettings() {
    for (const k of ['key', 'terminal', 'currency', 'merchantName']) form.elements[k].value = settings[k] || '';
    dlg.showModal();
  }
  $('#open-settings').addEventListener('click', openSettings);
  dlg.addEventListener('close', () => {
    if (dlg.returnValue !== 'save') return;
    for (const k of ['key', 'terminal', 'currency', 'merchantName']) settings[k] = form.elements[k].value.trim();
    settings.currency = settings.currency.toUpperCase() || 'EUR';
    FP.saveSettings(settings);
    settings = FP.loadSettings();
    updateWhere(); renderAmount();
  });

  /* ---- guidance while capturing ---- */
  const STEP_TEXT = {
    blink: (n) => (n > 1 ? `Blink ${n} times now` : 'Blink now'),
    turn_left: () => 'Turn your head to your left ←', /* the preview is mirrored: their left is screen left */
    turn_right: () => 'Turn your head to your right →',
    open_mouth: () => 'Open your mouth',
  };
  /* A timeline from the session's steps: look at the camera, each step in turn, then look back. */
  function planGuidance(steps, ms) {
    const plan = [{ until: 1200, text: 'Look straight at the camera' }];
    const span = (ms - 1200 - 1200) / Math.max(1, steps.length);
    steps.forEach((s, i) => plan.push({ until: 1200 + span * (i + 1), text: (STEP_TEXT[s.step] || (() => s.step))(s.count), step: i }));
    plan.push({ until: Infinity, text: 'Look back at the camera' });
    return plan;
  }
  /* Simple client checks, every 250 ms: light and a frozen camera. The server's verdict decides. */
  function clientCheck(state) {
    const b = FP.brightness(video);
    if (b !== null && b < 45) return 'More light please: face the light';
    if (b !== null && b > 225) return 'Too bright: step out of direct light';
    if (performance.now() - state.lastFrame > 1500) return 'The camera stopped: please wait';
    return '';
  }

  /* ---- payment ---- */
  async function pay() {
    if (!settings.key || !settings.terminal) { openSettings(); return; }
    if (!cameraOk) { setGuide('No camera: cannot pay by face', 'warn'); return; }
    clearTimeout(resultTimer);
    const amount = Number(digits);
    const attempt = { amount, currency: settings.currency, idem: FP.newKey() };
    show('checking'); $('#checking-text').textContent = 'Starting…';
    const sessionReq = { terminal_id: settings.terminal };
    if (settings.challenge) sessionReq.challenge = settings.challenge; /* honoured by test servers only */
    let r;
    try { r = await api('POST', '/v1/sessions', { settings, json: sessionReq }); }
    catch (e) { return declined('The payment service cannot be reached', String(e), true); }
    if (r.status !== 201) return declined('The terminal could not start a payment', FP.errorText(r), true);
    const session = r.body;

    /* capture with guidance */
    $('#prompt').textContent = session.prompt.charAt(0).toUpperCase() + session.prompt.slice(1);
    const plan = planGuidance(session.steps || [], SECONDS * 1000);
    $('#steps').innerHTML = '';
    for (const p of plan.slice(1, -1)) { const li = document.createElement('li'); li.textContent = p.text; $('#steps').append(li); }
    show('capture');
    const ctl = new AbortController(), state = { lastFrame: performance.now(), t: 0 };
    capture = ctl;
    const tick = setInterval(() => {
      const t = state.t, now = plan.find((p) => t < p.until);
      document.querySelectorAll('#steps li').forEach((li, i) => {
        li.className = now.step === i ? 'now' : (now.step === undefined ? t > 1200 : i < now.step) ? 'done' : '';
      });
      const warn = clientCheck(state);
      setGuide(warn || now.text, warn ? 'warn' : 'go');
      bar.style.width = Math.min(100, (100 * t) / (SECONDS * 1000)) + '%';
    }, 250);
    /* the server says how many frames a payment may carry: fewer frames per second rather than a
     * shorter capture, so the whole challenge still fits */
    const maxFrames = Math.min(session.max_frames || MAX_FRAMES, MAX_FRAMES);
    const fps = Math.min(FPS, maxFrames / SECONDS);
    let frames;
    try {
      frames = await FP.captureFrames(video, { fps, ms: SECONDS * 1000, max: maxFrames, signal: ctl.signal,
        onFrame: (n, t) => { state.lastFrame = performance.now(); state.t = t; } });
    } finally { clearInterval(tick); capture = null; bar.style.width = '0'; }
    if (ctl.signal.aborted) return reset();
    setGuide('Thank you', '');

    /* send: the same Idempotency-Key on a retry, so a lost answer never charges twice */
    show('checking'); $('#checking-text').textContent = `Recognising your face (${frames.length} frames)…`;
    const body = new FormData();
    body.append('terminal_id', settings.terminal);
    body.append('amount', String(amount));
    body.append('currency', attempt.currency);
    body.append('session_id', session.session_id);
    frames.forEach((f, i) => body.append('frame', f.blob, `frame${i}.jpg`));
    frames.forEach((f) => body.append('t_ms', String(f.tMs)));
    for (let tries = 0; ; tries++) {
      try {
        r = await api('POST', '/v1/payments', { settings, form: body, headers: { 'Idempotency-Key': attempt.idem } });
        if (!(r.status === 409 && r.body.error && r.body.error.code === 'idempotency_in_progress') &&
            r.status !== 503) break;
      } catch (e) { if (tries >= 2) return declined('The payment service cannot be reached', String(e), true); }
      if (tries >= 4) break;
      await new Promise((ok) => setTimeout(ok, 1000 * (tries + 1)));
    }
    handlePayment(r);
  }

  const REASONS = {
    no_match: 'Your face was not recognised', score: 'Your face was not recognised',
    spoof: 'The liveness check failed', challenge_failed: 'The liveness check failed: please follow the prompt',
    challenge_incomplete: 'The challenge was not completed: please follow the prompt',
    frames_replayed: 'These camera frames were already used', frames: 'Your face was not seen clearly',
    locked: 'Face payment is locked for this customer: please ask staff', customer: 'No wallet in this currency',
    no_stepup: 'A PIN is needed but none is set', insufficient_funds: 'Insufficient funds',
    limit_per_payment: 'Over the per-payment limit', limit_daily: 'Over the daily limit', cancelled: 'Cancelled',
    stepup_failed: 'Wrong PIN too many times', expired: 'The PIN was not entered in time',
  };
  function reasonText(p) {
    const why = [p.decline_reason, ...(p.reasons || [])].filter(Boolean);
    /* the most specific first: liveness before identity, which fails as a consequence */
    for (const k of ['challenge_incomplete', 'challenge_failed', 'frames_replayed', 'insufficient_funds', 'limit_per_payment',
                     'limit_daily', 'locked', 'customer', 'no_match', 'score', 'frames', 'spoof', 'no_stepup', 'cancelled',
                     'stepup_failed', 'expired'])
      if (why.includes(k)) return REASONS[k];
    return 'The payment was declined';
  }

  /* Advice for the next attempt, from what the server rejected in the frames. */
  function hint(p) {
    const rej = (p.identification && p.identification.frames_rejected) || {};
    const top = Object.keys(rej).sort((a, b) => rej[b] - rej[a])[0];
    return { no_face: 'face the camera', multiple_faces: 'only one person in front of the camera, please',
             quality: 'move closer, into the light', pose: 'face the camera' }[top] || '';
  }

  function handlePayment(r) {
    const p = r.body;
    if (r.status === 200 && p.status === 'approved') return approved(p);
    if (r.status === 200 && p.status === 'declined') {
      const lv = p.liveness || {};
      declined(reasonText(p), [lv.reason, (p.reasons || []).join(', ')].filter(Boolean).join(' · '), true);
      const tip = hint(p);
      if (tip) setGuide('Tip: ' + tip, 'warn');
      return;
    }
    if (r.status === 402 && p.status === 'step_up_required') return askPin(p);
    declined('The payment could not be completed', FP.errorText(r), true);
  }

  async function approved(p) {
    payment = p;
    $('#receipt-amount').textContent = money(p.amount, p.currency);
    $('#receipt-merchant').textContent = settings.merchantName ? `${settings.merchantName} (${p.merchant_id})` : p.merchant_id;
    $('#receipt-customer').textContent = p.customer_id || '';
    $('#receipt-id').textContent = String(p.id);
    $('#receipt-time').textContent = new Date(p.updated_at || Date.now()).toLocaleString();
    $('#approved').hidden = false; $('#declined').hidden = true; $('#retry').hidden = true;
    show('result'); setGuide('Thank you!', 'go');
    resultTimer = setTimeout(reset, 30000);
    /* the customer's name, when this key may read it */
    try {
      const c = await api('GET', '/v1/customers/' + encodeURIComponent(p.customer_id) + '?currency=' + p.currency, { settings });
      if (c.ok && c.body.name && payment === p) $('#receipt-customer').textContent = `${c.body.name} (${p.customer_id})`;
    } catch (_) { /* the id is enough */ }
  }

  function declined(reason, detail, canRetry) {
    $('#declined-reason').textContent = reason;
    $('#declined-detail').textContent = detail || '';
    $('#approved').hidden = true; $('#declined').hidden = false; $('#retry').hidden = !canRetry;
    show('result'); setGuide('Payment declined', 'warn');
    resultTimer = setTimeout(reset, 30000);
  }

  /* ---- step-up ---- */
  function renderPin() { $('#pin').textContent = '•'.repeat(pinDigits.length) || ' '; $('#pin-ok').disabled = pinDigits.length < 4; }
  function keyPin(k) {
    if (k === 'C') pinDigits = '';
    else if (k === 'back') pinDigits = pinDigits.slice(0, -1);
    else if (/^\d$/.test(k) && pinDigits.length < 12) pinDigits += k;
    $('#pin-error').textContent = '';
    renderPin();
  }
  $('#pin-keys').addEventListener('click', (e) => { if (e.target.dataset.key) keyPin(e.target.dataset.key); });
  function askPin(p) {
    payment = p; pinDigits = '';
    const phone = p.step_up && p.step_up.method === 'phone4';
    $('#pin-title').textContent = phone ? 'Enter the last 4 digits of your phone number' : 'Enter your PIN';
    $('#pin-why').textContent = `To confirm ${money(p.amount, p.currency)}.`;
    $('#pin-error').textContent = '';
    renderPin(); show('pin'); setGuide('Please confirm with your PIN', 'go');
  }
  async function submitPin() {
    if (pinDigits.length < 4 || !payment) return;
    const field = payment.step_up && payment.step_up.method === 'phone4' ? 'phone_last4' : 'pin';
    $('#pin-ok').disabled = true;
    let r;
    try { r = await api('POST', `/v1/payments/${payment.id}/stepup`, { settings, json: { [field]: pinDigits } }); }
    catch (e) { $('#pin-error').textContent = 'The payment service cannot be reached'; renderPin(); return; }
    pinDigits = ''; renderPin();
    if (r.status === 200 && r.body.verified) return approved(r.body.payment);
    if (r.status === 402 && !r.body.locked && r.body.status === 'step_up_required') {
      $('#pin-error').textContent = `Wrong PIN: ${r.body.attempts_left} attempt(s) left`;
      return;
    }
    if (r.body.payment) return declined(reasonText(r.body.payment), r.body.locked ? 'Face payment is now locked' : '', false);
    declined('The PIN could not be checked', FP.errorText(r), false);
  }
  $('#pin-ok').addEventListener('click', submitPin);
  $('#pin-cancel').addEventListener('click', async () => {
    if (payment) { try { await api('POST', `/v1/payments/${payment.id}/cancel`, { settings }); } catch (_) { /* expires anyway */ } }
    reset();
  });

  /* ---- buttons, start ---- */
  function reset() {
    clearTimeout(resultTimer);
    if (capture) capture.abort();
    payment = null; digits = ''; renderAmount(); show('amount');
    setGuide(cameraOk ? 'Enter the amount' : 'No camera', cameraOk ? '' : 'warn');
    $('#amount-keys button').focus();
  }
  $('#pay').addEventListener('click', pay);
  $('#capture-cancel').addEventListener('click', () => capture && capture.abort());
  $('#new-payment').addEventListener('click', reset);
  $('#retry').addEventListener('click', () => { const d = digits; reset(); digits = d; renderAmount(); pay(); });

  updateWhere(); reset();
  FP.startCamera(video).then(() => { cameraOk = true; reset(); },
    (e) => { setGuide('Camera unavailable: ' + (e.message || e.name), 'warn'); document.body.dataset.camera = 'error'; });
})();
