// A --fake module for spec/helpers/server.js (see spec/on_http_spec.lua): every
// request under /echo/json/ or /echo/text/ is answered with itself, the way a
// careless or hostile server might give a client's secrets back: its method, URL,
// Authorization header and body, as JSON (in an OAuth error, so the library reads
// it) or as plain text, and again in response headers and a cookie.
'use strict';

exports.handle = (rec, res, send) => {
  const json = rec.path.startsWith('/echo/json/');
  if (!json && !rec.path.startsWith('/echo/text/')) return false;
  const auth = rec.headers.authorization || '';
  const text = `${rec.method} ${rec.url}\nauthorization: ${auth}\n\n${rec.body}`;
  const headers = {
    'X-Echo-Authorization': auth,
    'X-Echo-Url': rec.url,
    'Set-Cookie': `echo=${encodeURIComponent(rec.body)}`,
    Location: rec.url,
  };
  if (json) {
    send(res, 400, {
      error: 'invalid_request',
      error_description: text,
      echo: { method: rec.method, url: rec.url, authorization: auth, body: rec.body,
        form: rec.form || null, args: rec.args, basic: rec.basic || null },
    }, headers);
  } else {
    const body = Buffer.from(text, 'utf8');
    res.writeHead(200, Object.assign({ 'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': body.length }, headers));
    res.end(body);
  }
  return true;
};

exports.admin = () => ({});
