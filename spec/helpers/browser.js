#!/usr/bin/env node
// Plays a person in a real browser: Debian's headless Chromium driven by playwright-core
// (pinned in package.json; no browser download, ever).
//
//   node spec/helpers/browser.js AUTHORIZATION_URL [--login=alice] [--password=x] [--deny]
//                                [--timeout-ms=30000] [--screenshot=PATH]
//
// Opens the URL, fills oidc-provider's login form (login, password), clicks through the
// consent page (or [ Cancel ] with --deny), and waits until the browser has arrived at the
// authorization request's redirect_uri, i.e. the loopback listener of the flow under test,
// and shows its page. Prints one JSON line on stdout and exits 0:
//   {"ok":true,"url":"http://127.0.0.1:PORT/cb?...","status":200,"title":"...","text":"...",
//    "steps":["login","consent"],"ms":1234}
// On failure: {"ok":false,"error":"...","url":"..."} and exit status 1.
// Chromium: SMARTAUTH_CHROMIUM or /usr/bin/chromium, with a fresh profile directory that is
// removed at exit. Every request goes to 127.0.0.1.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const started = Date.now();
const opts = { login: 'alice', password: 'x', deny: false, timeoutMs: 30000, screenshot: null };
let target = null;
for (const arg of process.argv.slice(2)) {
  let m;
  if ((m = /^--login=(.*)$/.exec(arg))) opts.login = m[1];
  else if ((m = /^--password=(.*)$/.exec(arg))) opts.password = m[1];
  else if (arg === '--deny') opts.deny = true;
  else if ((m = /^--timeout-ms=(\d+)$/.exec(arg))) opts.timeoutMs = Number(m[1]);
  else if ((m = /^--screenshot=(.+)$/.exec(arg))) opts.screenshot = m[1];
  else if (!arg.startsWith('--') && target === null) target = arg;
  else {
    process.stdout.write(`${JSON.stringify({ ok: false, error: `unknown argument ${arg}` })}\n`);
    process.exit(2);
  }
}

function report(result, code) {
  process.stdout.write(`${JSON.stringify({ ...result, ms: Date.now() - started })}\n`);
  process.exitCode = code;
}

async function main() {
  if (!target) throw new Error('usage: browser.js AUTHORIZATION_URL [options]');
  const redirect = new URL(target).searchParams.get('redirect_uri');
  if (!redirect) throw new Error('the URL has no redirect_uri parameter');
  const { chromium } = require('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'smartauth-chromium-'));
  let context;
  // the whole run has a deadline, whatever step hangs
  const deadline = setTimeout(() => {
    report({ ok: false, error: `gave up after ${opts.timeoutMs} ms` }, 1);
    process.exit(1);
  }, opts.timeoutMs + 5000);
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.SMARTAUTH_CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run'],
      timeout: opts.timeoutMs,
    });
    context.setDefaultTimeout(opts.timeoutMs);
    const page = context.pages()[0] || await context.newPage();
    const steps = [];
    const atListener = () => page.url().startsWith(redirect);
    let status = null; // of the last document the main frame loaded
    page.on('response', (r) => {
      if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) status = r.status();
    });
    await page.goto(target);
    for (let i = 0; i < 10 && !atListener(); i += 1) {
      const before = page.url();
      const left = page.waitForURL((u) => u.href !== before, { waitUntil: 'load' });
      if (opts.deny && await page.locator('a[href$="/abort"]').count()) {
        steps.push('cancel');
        await page.locator('a[href$="/abort"]').first().click();
      } else if (await page.locator('input[name="login"]').count()) {
        steps.push('login');
        await page.fill('input[name="login"]', opts.login);
        await page.fill('input[name="password"]', opts.password);
        await page.locator('button[type="submit"]').first().click();
      } else if (await page.locator('button[type="submit"]').count()) {
        steps.push('consent');
        await page.locator('button[type="submit"]').first().click();
      } else {
        throw new Error(`stuck on ${before}: ${(await page.innerText('body')).slice(0, 300)}`);
      }
      await left;
    }
    if (!atListener()) throw new Error(`never reached ${redirect}; at ${page.url()}`);
    await page.waitForLoadState('load');
    const title = await page.title();
    const text = (await page.innerText('body')).trim();
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot });
    report({ ok: true, url: page.url(), title, text, steps, status }, 0);
  } finally {
    clearTimeout(deadline);
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((err) => {
  report({ ok: false, error: String(err && err.message || err) }, 1);
});
