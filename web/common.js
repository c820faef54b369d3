/* common.js - what the kiosk (index.html) and the enrollment page (enroll.html) share: the settings
 * (localStorage, overridable by query parameters), calls to the facepay /v1 API, the camera, frame
 * capture into JPEG blobs, a cheap brightness check for live guidance, and money formatting.
 * Plain script, no modules or build step: it defines one global, `FP`. */
'use strict';

const FP = (() => {
  const STORE = 'facepay.kiosk.settings';
  const DEFAULTS = { key: '', terminal: '', currency: 'EUR', merchantName: '', challenge: '' };
  const query = new URLSearchParams(location.search);

  /* Settings: stored values, then query parameters (?key=...&terminal=...) for this page load only. */
  function loadSettings() {
    let stored = {};
    try { stored = JSON.parse(localStorage.getItem(STORE) || '{}'); } catch (_) { /* corrupt: defaults */ }
    const s = Object.assign({}, DEFAULTS, stored);
    for (const k of Object.keys(DEFAULTS)) if (query.has(k)) s[k] = query.get(k);
    return s;
  }
  function saveSettings(s) {
    const keep = {};
    for (const k of Object.keys(DEFAULTS)) keep[k] = s[k] || '';
    localStorage.setItem(STORE, JSON.stringify(keep));
  }
  const num = (name, def) => { const v = Number(query.get(name)); return query.has(name) && v > 0 ? v : def; };

  /* Calls the API; resolves to {status, ok, body}. Network failures reject. */
  async function api(method, path, { settings, json, form, headers = {} } = {}) {
    const h = Object.assign({ Accept: 'application/json' }, headers);
    if (settings && settings.key) h.Authorization = 'Bearer ' + settings.key;
    let body;
    if (json !== undefined) { h['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
    else if (form) body = form; /* the browser sets the multipart boundary */
    const res = await fetch(path, { method, headers: h, body, cache: 'no-store' });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { status: res.status, ok: res.ok, body: data || {} };
  }
  function errorText(r) {
    const e = r.body && r.body.error;
    return e ? `${e.message} (${e.code})` : `HTTP ${r.status}`;
  }

  /* Camera: the user-facing camera at up to 640x480. */
  async function startCamera(video) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
      throw new Error('this browser has no camera access (a secure origin is required: https or localhost)');
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: false, video: { facingMode: 'user', width: { ideal: 640 }, height: { ideal: 480 } } });
    video.srcObject = stream;
    await video.play();
    return stream;
  }

  /* Captures frames from `video` as JPEG blobs with times in ms since the first frame.
   * Only new camera frames are taken (requestVideoFrameCallback where available), at most `fps`
   * per second, for `ms` or until `max` frames or until opts.signal aborts. onFrame(n, tMs) is called after each. */
  function captureFrames(video, { fps = 25, ms = 7000, max = 200, maxSide = 640, quality = 0.8, signal, onFrame } = {}) {
    return new Promise((resolve, reject) => {
      const scale = Math.min(1, maxSide / Math.max(video.videoWidth, video.videoHeight));
      const canvas = document.createElement('canvas');
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      const ctx = canvas.getContext('2d');
      const frames = [], pending = [];
      const period = 1000 / fps;
      let t0 = null, next = 0, done = false;
      const finish = () => {
        if (done) return;
        done = true;
        Promise.all(pending).then(() => resolve(frames.filter(Boolean)), reject);
      };
      if (signal) signal.addEventListener('abort', finish);
      const grab = (now, mediaTimeMs) => {
        if (done) return;
        const t = mediaTimeMs !== undefined ? mediaTimeMs : now;
        if (t0 === null) t0 = t;
        const rel = t - t0;
        if (rel >= ms || frames.length >= max) return finish();
        if (rel >= next) {
          next = Math.max(next + period, rel + period / 2); /* keep the average rate, never burst */
          ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
          const i = frames.length, tMs = Math.round(rel);
          frames.push(null);
          pending.push(new Promise((ok) => canvas.toBlob((b) => { frames[i] = b && { blob: b, tMs }; ok(); },
                                                          'image/jpeg', quality)));
          if (onFrame) onFrame(frames.length, tMs);
        }
        schedule();
      };
      const schedule = () => {
        if (done) return;
        if (video.requestVideoFrameCallback)
          video.requestVideoFrameCallback((now, meta) => grab(now, meta && meta.mediaTime !== undefined
                                                                   ? meta.mediaTime * 1000 : undefined));
        else setTimeout(() => grab(performance.now()), period / 2);
      };
      schedule();
    });
  }

  /* Mean luma (0..255) of the centre of the current video frame, on a tiny canvas. */
  const probe = document.createElement('canvas');
  probe.width = 32; probe.height = 24;
  function brightness(video) {
    if (!video.videoWidth) return null;
    const c = probe.getContext('2d', { willReadFrequently: true });
    const w = video.videoWidth, h = video.videoHeight;
    c.drawImage(video, w * 0.25, h * 0.15, w * 0.5, h * 0.7, 0, 0, 32, 24);
    const d = c.getImageData(0, 0, 32, 24).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    return sum / (d.length / 4);
  }

  /* Money: amounts are integer minor units; the currency says how many decimals. */
  function decimals(currency) {
    try { return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits; }
    catch (_) { return 2; }
  }
  function money(minor, currency) {
    const d = decimals(currency);
    const value = minor / 10 ** d;
    try {
      return new Intl.NumberFormat(navigator.language || 'en', { style: 'currency', currency,
        minimumFractionDigits: d, maximumFractionDigits: d }).format(value);
    } catch (_) { return `${value.toFixed(d)} ${currency}`; }
  }

  const newKey = () => (crypto.randomUUID ? crypto.randomUUID()
                                          : Date.now().toString(36) + Math.random().toString(36).slice(2));
  const $ = (sel) => document.querySelector(sel);

  return { loadSettings, saveSettings, num, query, api, errorText, startCamera, captureFrames, brightness,
           decimals, money, newKey, $ };
})();
