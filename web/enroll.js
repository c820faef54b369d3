/* enroll.js - the enrollment page (enroll.html): creates the customer with a wallet and a PIN
 * (POST /v1/customers), captures about 8 frames while asking for a frontal look and slight turns
 * (the server keeps frontal plus slightly turned faces), and enrols them (POST /v1/customers/{id}/enroll).
 * Uses the kiosk's settings (API key, currency), or ?key=...&currency=... for tests. */
'use strict';

(() => {
  const { $, api } = FP;
  const settings = FP.loadSettings();
  const FRAMES = FP.num('frames', 8), SECONDS = FP.num('seconds', 4);
  const video = $('#video'), guide = $('#guide'), bar = $('#progress-bar'), form = $('#enroll-form');
  let cameraOk = false;
  const setGuide = (text, kind = '') => { guide.textContent = text; guide.className = 'guide ' + kind; };
  $('#no-key').hidden = !!settings.key;

  function result(ok, title, text, detail) {
    $('#result-title').textContent = title;
    $('#result-title').className = ok ? 'ok' : 'bad';
    $('#result-text').textContent = text;
    $('#result-detail').textContent = detail || '';
    form.hidden = true; $('#result').hidden = false;
    document.body.dataset.screen = ok ? 'enrolled' : 'failed'; /* for the end-to-end test */
    $('#again').focus();
  }
  const formError = (msg) => { $('#form-error').textContent = msg; $('#fields').disabled = false; $('#start').disabled = false; };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    $('#form-error').textContent = '';
    if (!settings.key) return formError('No merchant API key: set it in the kiosk\'s Settings first.');
    if (!form.checkValidity()) {
      const bad = form.querySelector(':invalid');
      bad.focus();
      return formError(bad.name === 'pin' ? 'The PIN must be 4 to 12 digits.' : 'Please check the customer id.');
    }
    if (!cameraOk) return formError('The camera is not available.');
    const f = form.elements, id = f.id.value.trim();
    $('#fields').disabled = true; $('#start').disabled = true;

    /* 1. the customer, with a wallet in the kiosk's currency and the PIN */
    let r;
    try {
      if (!f.existing.checked) {
        r = await api('POST', '/v1/customers', { settings,
          json: { id, name: f.name.value.trim(), pin: f.pin.value, currency: settings.currency || 'EUR' } });
        if (r.status !== 201) return formError('Could not create the customer: ' + FP.errorText(r));
      }
    } catch (err) { return formError('The payment service cannot be reached.'); }

    /* 2. the frames: frontal first, then slightly to each side */
    const cues = [[0, 'Look straight at the camera'], [0.5, 'Turn your head slightly to your left ←'],
                  [0.75, 'Turn your head slightly to your right →']];
    const tick = (n) => {
      const part = n / FRAMES;
      setGuide(cues.filter(([at]) => part >= at).pop()[1], 'go');
      bar.style.width = Math.round(100 * part) + '%';
    };
    tick(0);
    const frames = await FP.captureFrames(video, { fps: FRAMES / SECONDS, ms: SECONDS * 1000 + 500, max: FRAMES,
                                                   onFrame: (n) => tick(n) });
    bar.style.width = '0'; setGuide('Thank you: checking the pictures…');

    /* 3. enrol */
    const body = new FormData();
    frames.forEach((fr, i) => body.append('frame', fr.blob, `frame${i}.jpg`));
    frames.forEach((fr) => body.append('t_ms', String(fr.tMs)));
    try { r = await api('POST', `/v1/customers/${encodeURIComponent(id)}/enroll`, { settings, form: body }); }
    catch (err) { return result(false, 'Not enrolled', 'The payment service cannot be reached.'); }
    setGuide('');
    const b = r.body, d = r.ok ? b : (b.error || {});
    const kept = d.frames_kept !== undefined
      ? `${d.frames_kept} of ${d.frames_seen} pictures kept (frontal ${d.poses.frontal}, left ${d.poses.left}, right ${d.poses.right})` : '';
    if (r.ok && b.enrolled) return result(true, 'Enrolled ✓', `${f.name.value.trim() || id} (${id}) can now pay by face.`, kept);
    if (d.code === 'lookalike')
      return result(false, 'Not enrolled', `This face is too close to customer ${d.other_customer_id}: ask staff.`, kept);
    result(false, 'Not enrolled', (d.message || `HTTP ${r.status}`) + ' Please try again with better light, facing the camera.', kept);
  });

  $('#again').addEventListener('click', () => {
    form.reset(); form.hidden = false; $('#result').hidden = true;
    $('#fields').disabled = false; $('#start').disabled = false;
    document.body.dataset.screen = 'form';
    setGuide(cameraOk ? 'Fill in the form, then look at the camera' : 'No camera', cameraOk ? '' : 'warn');
    form.elements.id.focus();
  });

  document.body.dataset.screen = 'form';
  FP.startCamera(video).then(() => { cameraOk = true; setGuide('Fill in the form, then look at the camera'); },
    (e) => { setGuide('Camera unavailable: ' + (e.message || e.name), 'warn'); document.body.dataset.camera = 'error'; });
})();
