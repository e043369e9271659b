// Receipt, checkpoint and proof checks in the browser, with WebCrypto
// (Ed25519, SHA-256) and nothing from the server but the data to check.
// The rules are package ledgerfmt's (receipt.go, hash.go, checkpoint.go,
// proof.go); the Go tests of the console run these functions in Chromium
// against receipts the server signed.

const enc = new TextEncoder();

export class VerifyError extends Error {}

function fail(msg) {
  throw new VerifyError(msg);
}

export function b64decode(s) {
  let bin;
  try {
    bin = atob(s);
  } catch {
    fail(`not base64: ${String(s).slice(0, 40)}`);
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// canonical returns the RFC 8785 (JCS) form of a parsed JSON value: what
// the ledger stores and hashes. JCS is defined by ECMAScript's own number
// and string serialization, so JSON.stringify gives the leaves.
export function canonical(v) {
  if (v === null || typeof v !== "object") {
    if (typeof v === "number" && !Number.isFinite(v)) fail("a number that is not finite");
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  // Default sort compares UTF-16 code units, as RFC 8785 §3.2.3 asks.
  const keys = Object.keys(v).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
}

// parseKey reads a verifier key in signed-note form, name+hash+base64 (as
// GET /v1/ledger/key and `logline ledger key` print it), and checks that
// its hash is the key's.
export async function parseKey(vkey) {
  // The key's base64 may itself hold "+": split at the first two only.
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(String(vkey).trim());
  if (!m) fail("the verifier key is not name+hash+key");
  const parts = m.slice(1);
  const raw = b64decode(parts[2]);
  if (raw.length !== 33 || raw[0] !== 1) fail("the verifier key is not an Ed25519 key");
  const h = await sha256(concat(enc.encode(parts[0] + "\n"), raw));
  if (hex(h.slice(0, 4)) !== parts[1]) fail("the verifier key's hash does not match its key");
  let key;
  try {
    key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
  } catch (e) {
    fail(`this browser cannot check Ed25519 signatures (${e.message})`);
  }
  return { origin: parts[0], kid: parts[1], key };
}

async function ed25519(k, msg, sig) {
  return crypto.subtle.verify({ name: "Ed25519" }, k.key, sig, msg);
}

const tsLayout = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

// leafHash is the RFC 6962 leaf hash of a record: SHA-256 of 0x00 and
// {"seq":S,"ts":"T","KIND":BODY}.
export async function leafHash(seq, ts, kind, body) {
  const input = `{"seq":${seq},"ts":"${ts}","${kind}":${body}}`;
  return sha256(concat(new Uint8Array([0]), enc.encode(input)));
}

async function node(l, r) {
  return sha256(concat(new Uint8Array([1]), l, r));
}

const half = (n) => Math.floor(n / 2);
const odd = (n) => n % 2 === 1;

// verifyInclusion checks an RFC 6962 audit path (RFC 9162 §2.1.3.2).
export async function verifyInclusion(index, size, leaf, path, root) {
  if (!(index < size)) fail(`index ${index} outside a tree of ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) fail("the audit path is too long");
    if (odd(fn) || fn === sn) {
      r = await node(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = await node(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) fail("the audit path is too short");
  if (!equal(r, root)) fail("the audit path does not lead to the root");
}

// verifyConsistency checks that the tree of size2 with root2 extends the
// tree of size1 with root1 (RFC 9162 §2.1.4.2).
export async function verifyConsistency(size1, size2, root1, root2, path) {
  if (size1 > size2) fail(`size ${size1} is larger than ${size2}`);
  if (size1 === size2) {
    if (path.length !== 0) fail("a proof between equal sizes must be empty");
    if (!equal(root1, root2)) fail("same size, different roots: the ledger was rewritten");
    return;
  }
  if (size1 === 0) return; // the empty tree is a prefix of any tree
  let m = size1;
  while (m % 2 === 0) m /= 2;
  const p = m === 1 ? [root1, ...path] : path; // a power of two: the old root is a node of the new tree
  if (p.length === 0) fail("the consistency proof is empty");
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = p[0];
  let sr = p[0];
  for (const c of p.slice(1)) {
    if (sn === 0) fail("the consistency proof is too long");
    if (odd(fn) || fn === sn) {
      fr = await node(c, fr);
      sr = await node(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = await node(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) fail("the consistency proof is too short");
  if (!equal(fr, root1)) fail("the older checkpoint's root is not a prefix of the newer tree: the ledger was rewritten");
  if (!equal(sr, root2)) fail("the consistency proof does not lead to the newer root");
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// receiptID is the jti of the receipt of record seq appended at ts: "r_"
// and the ULID whose time is ts in milliseconds and whose entropy is seq.
export function receiptID(seq, ts) {
  const ms = BigInt(Date.parse(ts.slice(0, 23) + "Z"));
  let n = (ms << 80n) | BigInt(seq);
  let s = "";
  for (let i = 0; i < 26; i++) {
    s = crockford[Number(n & 31n)] + s;
    n >>= 5n;
  }
  return "r_" + s;
}

// statement is the text a group commit's signature covers.
export function statement(origin, first, size, root, ts) {
  return `logline receipt v1\n${origin}\nledger.append ${first} ${size} ${root} ${ts}\n`;
}

// verifyReceipt checks a span's receipt (GET /v1/receipts/{tenant}/{id})
// against the span (the object the ledger holds, GET /v1/spans/...) and the
// verifier key, as ledgerfmt.Verifier.VerifyReceipt does. It resolves to
// a summary and rejects with a VerifyError that says what does not hold.
export async function verifyReceipt(vkey, receipt, span) {
  const k = typeof vkey === "string" ? await parseKey(vkey) : vkey;
  const r = receipt;
  if (r.op !== "ledger.append") fail(`unknown op ${JSON.stringify(r.op)}`);
  if (r.kid !== k.kid) fail(`signed by key ${r.kid}, not ${k.kid}`);
  if (span.id !== r.span_id || span.tenant !== r.tenant) {
    fail(`the receipt is for span ${r.tenant}/${r.span_id}, not ${span.tenant}/${span.id}`);
  }
  if (!tsLayout.test(r.ts)) fail(`ts ${r.ts} is not in the ledger's layout`);
  const leaf = await leafHash(r.seq, r.ts, "span", canonical(span));
  if (b64encode(leaf) !== r.leaf) {
    fail(`leaf hash ${r.leaf} does not match the span (${b64encode(leaf)}): the span is not the one acknowledged`);
  }
  const b = r.batch;
  if (!(r.seq >= b.first && r.seq - b.first < b.size)) fail(`seq ${r.seq} outside batch [${b.first},+${b.size})`);
  await verifyInclusion(r.seq - b.first, b.size, leaf, (b.path || []).map(b64decode), b64decode(b.root));
  const msg = enc.encode(statement(k.origin, b.first, b.size, b.root, r.ts));
  if (!(await ed25519(k, msg, b64decode(r.sig)))) fail("bad signature");
  const jti = receiptID(r.seq, r.ts);
  if (r.jti !== jti) fail(`jti ${r.jti}, want ${jti}`);
  return { seq: r.seq, kid: k.kid, origin: k.origin, batch: `${b.first}+${b.size}`, ts: r.ts };
}

// verifyCheckpoint checks a signed checkpoint note (GET /v1/ledger/checkpoint)
// with the verifier key and returns its origin, size and root.
export async function verifyCheckpoint(vkey, noteText) {
  const k = typeof vkey === "string" ? await parseKey(vkey) : vkey;
  const cut = noteText.indexOf("\n\n");
  if (cut < 0) fail("the checkpoint is not a signed note");
  const text = noteText.slice(0, cut + 1);
  const lines = text.split("\n");
  if (lines.length < 4 || lines[0] !== k.origin) fail(`checkpoint origin ${JSON.stringify(lines[0])}, want ${k.origin}`);
  if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) fail("checkpoint size is not a number");
  const root = b64decode(lines[2]);
  if (root.length !== 32) fail("checkpoint root is not 32 bytes");
  let signed = false;
  for (const line of noteText.slice(cut + 2).split("\n")) {
    if (!line.startsWith("\u2014 ")) continue;
    const [name, sig64] = line.slice(2).split(" ");
    if (name !== k.origin) continue;
    const sig = b64decode(sig64);
    if (sig.length !== 68 || hex(sig.slice(0, 4)) !== k.kid) continue;
    if (!(await ed25519(k, enc.encode(text), sig.slice(4)))) fail("the checkpoint's signature does not verify");
    signed = true;
  }
  if (!signed) fail(`no signature by ${k.origin}+${k.kid}`);
  return { origin: lines[0], size: Number(lines[1]), root: lines[2] };
}
