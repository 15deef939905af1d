// A whole MCP session with hsamem mcp, driven by the official TypeScript SDK: initialise, list the
// tools, remember, recall, list, the errors, recall again. Run by tests/test_mcp.sh:
//   node session.mjs stdio HSAMEM SOCKET USER   (spawns `HSAMEM -s SOCKET mcp USER`)
//   node session.mjs http URL                   (a server already listening at URL)
// Exits 0 when every check passed, else prints the first failure and exits 1.
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

const [mode, ...rest] = process.argv.slice(2);

function transport(readOnly) {
  if (mode === 'stdio') {
    const [hsamem, socket, user] = rest;
    const args = ['-s', socket, 'mcp', user];
    if (readOnly) args.push('--read-only');
    return new StdioClientTransport({ command: hsamem, args, stderr: 'inherit' });
  }
  return new StreamableHTTPClientTransport(new URL(rest[0]));
}

async function open(readOnly = false) {
  const client = new Client({ name: 'hsamem-test', version: '1.0.0' });
  const t = transport(readOnly);
  await client.connect(t);
  return { client, t };
}

const text = (r) => r.content.map((c) => c.text).join('\n');

async function call(client, name, args) {
  return client.callTool({ name, arguments: args });
}

async function session() {
  const { client, t } = await open();
  // Initialised: the server is hsamem, offers tools, and agreed on the SDK's newest revision.
  assert.equal(client.getServerVersion().name, 'hsamem');
  assert.ok(client.getServerCapabilities().tools, 'no tools capability');
  assert.equal(t.protocolVersion ?? LATEST_PROTOCOL_VERSION, LATEST_PROTOCOL_VERSION);
  assert.match(client.getInstructions() ?? '', /memory/);

  const { tools } = await client.listTools();
  const names = tools.map((x) => x.name).sort();
  assert.deepEqual(names, ['ask', 'forget', 'list_memories', 'memory_stats', 'recall', 'remember']);
  for (const tool of tools) {
    assert.equal(tool.inputSchema.type, 'object', tool.name);
    assert.ok(tool.description.length > 20, tool.name);
    // No tool lets the model choose the memory.
    assert.ok(!('user' in (tool.inputSchema.properties ?? {})), tool.name);
  }
  assert.match(tools.find((x) => x.name === 'ask').description, /EXPERIMENTAL/);

  // Remember.
  const facts = [
    ['The user keeps a cat called Miso who only eats salmon.', 'user'],
    ['Noted: Miso the cat eats salmon.', 'assistant'],
    ['The user flies to Lisbon on the ninth of March for a conference.', 'user'],
    ['The user prefers green tea over coffee in the morning.', 'user'],
  ];
  let last = -1;
  for (const [fact, role] of facts) {
    const r = await call(client, 'remember', { text: fact, role, tags: ['test'] });
    assert.ok(!r.isError, text(r));
    assert.ok(r.structuredContent.seq > last, 'entries numbered in order');
    last = r.structuredContent.seq;
    assert.match(text(r), /^Remembered as entry #\d+\.$/);
  }

  // Recall: the entries that answer, ranked; the first is the one that answers, with its number,
  // role, time, tags and score.
  let r = await call(client, 'recall', { query: 'where does the user fly in March?', k: 8 });
  assert.ok(!r.isError, text(r));
  let es = r.structuredContent.entries;
  assert.ok(es.length >= 1 && es.length <= 8, JSON.stringify(es));
  assert.match(es[0].text, /Lisbon/);
  assert.equal(es[0].role, 'user');
  assert.deepEqual(es[0].tags, ['test']);
  assert.ok(es[0].timestamp_ms > 0 && typeof es[0].score === 'number');
  for (let i = 1; i < es.length; i++) assert.ok(es[i - 1].score >= es[i].score, 'ranked');
  assert.ok(new Set(es.map((e) => e.seq)).size === es.length, 'each entry once');
  assert.match(text(r), /^\[1\] #\d+ user, \d{4}-\d\d-\d\dT[\d:]+Z, score [\d.]+: The user flies to Lisbon/);
  r = await call(client, 'recall', { query: 'what does the cat eat' });
  assert.match(text(r), /#\d+ user, [^:]+:\d\d:\d\dZ, score [\d.]+: The user keeps a cat called Miso/);
  // The chunk view, on request: passages with the entries they cover.
  r = await call(client, 'recall', { query: 'where does the user fly in March?', chunks: true });
  assert.ok(!r.isError, text(r));
  assert.ok(!('entries' in r.structuredContent));
  assert.ok(r.structuredContent.hits.some((h) => h.entries.some((e) => /Lisbon/.test(e.text))));
  assert.match(text(r), /#\d+ user: The user flies to Lisbon/);
  // min_score: nothing passes a threshold above every score, and the result says so.
  r = await call(client, 'recall', { query: 'where does the user fly in March?', min_score: 1e6 });
  assert.ok(!r.isError, text(r));
  assert.deepEqual(r.structuredContent.entries, []);
  assert.ok(r.structuredContent.below_min_score >= 1);
  assert.match(text(r), /^Nothing relevant was found: no entry scored at least min_score 1e\+06 \(\d+ scored below it\)\.$/);
  r = await call(client, 'recall', { query: 'where does the user fly in March?', min_score: 0, k: 1 });
  assert.equal(r.structuredContent.entries.length, 1);
  assert.equal(r.structuredContent.below_min_score, 0);
  // context: the neighbours of the entry found, marked as context, without a score.
  r = await call(client, 'recall', { query: 'where does the user fly in March?', k: 1, context: 1 });
  es = r.structuredContent.entries;
  assert.match(es.find((e) => !e.context).text, /Lisbon/);
  assert.ok(es.some((e) => e.context && !('score' in e)), JSON.stringify(es));
  assert.match(text(r), /\(context\) #\d+ /);

  // List: the newest, then those before an entry.
  r = await call(client, 'list_memories', { count: 2 });
  assert.ok(!r.isError, text(r));
  assert.equal(r.structuredContent.total, facts.length);
  assert.deepEqual(r.structuredContent.entries.map((e) => e.seq), [last - 1, last]);
  assert.equal(r.structuredContent.entries[1].text, facts[3][0]);
  r = await call(client, 'list_memories', { before: 1 });
  assert.deepEqual(r.structuredContent.entries.map((e) => e.role), ['user']);
  r = await call(client, 'memory_stats', {});
  assert.ok(!r.isError, text(r));
  assert.match(text(r), /^4 entries, \d+ tokens in \d+ chunks; encoder lexical\.$/);

  // Bad arguments are tool errors that say what was wrong; nothing is stored.
  const bad = [
    ['remember', {}, /argument 'text' is required/],
    ['remember', { text: '' }, /argument 'text'/],
    ['remember', { text: 'x', user: 'other' }, /unknown argument 'user'/],
    ['remember', { text: 'x', role: 'king' }, /argument 'role' is not one of/],
    ['remember', { text: 'x', tags: [1] }, /argument 'tags' must be a string/],
    ['recall', { query: 'cat', k: 0 }, /argument 'k' is out of range/],
    ['recall', { query: 'cat', k: 'many' }, /argument 'k' must be an integer/],
    ['recall', { query: 'cat', min_score: 'high' }, /argument 'min_score' must be a number/],
    ['recall', { query: 'cat', context: 9 }, /argument 'context' is out of range/],
    ['recall', { query: 'cat', chunks: 'yes' }, /argument 'chunks' must be a boolean/],
    ['list_memories', { count: 101 }, /argument 'count' is out of range/],
  ];
  for (const [name, args, why] of bad) {
    r = await call(client, name, args);
    assert.equal(r.isError, true, `${name} ${JSON.stringify(args)}`);
    assert.match(text(r), why);
  }
  // The daemon's own refusal: ask on a lexical memory, with the daemon's message.
  r = await call(client, 'ask', { question: 'what does the cat eat?' });
  assert.equal(r.isError, true);
  assert.match(text(r), /^ask failed: .*lexical/);
  // An unknown tool is a protocol error.
  await assert.rejects(call(client, 'forget_everything', {}), /unknown tool/);
  r = await call(client, 'list_memories', {});
  assert.equal(r.structuredContent.total, facts.length, 'a refused call stored nothing');

  // Scopes: an entry remembered in a session; recall within that session finds only its entries,
  // within another nothing.
  r = await call(client, 'remember', {
    text: 'In this session the user booked a table at the harbour restaurant.',
    scope: ['session=s1'],
  });
  assert.ok(!r.isError, text(r));
  r = await call(client, 'recall', { query: 'what did the user book?', scope: ['session=s1'] });
  assert.ok(!r.isError, text(r));
  assert.match(text(r), /harbour restaurant/);
  assert.ok(r.structuredContent.entries.every((e) => /harbour/.test(e.text)));
  assert.deepEqual(r.structuredContent.entries[0].scope, ['session=s1']);
  assert.match(text(r), /\n +session=s1\n/);
  r = await call(client, 'recall', { query: 'what did the user book?', scope: ['session=s2'] });
  assert.ok(!r.isError, text(r));
  assert.match(text(r), /Nothing relevant was found/);
  r = await call(client, 'recall', { query: 'cat', role: 'assistant' });
  assert.ok(r.structuredContent.entries.length >= 1);
  assert.ok(r.structuredContent.entries.every((e) => e.role === 'assistant'));
  assert.doesNotMatch(text(r), /keeps a cat/);
  r = await call(client, 'recall', { query: 'cat', scope: ['nonsense'] });
  assert.equal(r.isError, true, 'a bad scope pair is a tool error');
  // Metadata: kept with the entry, shown with it, and a filter of its own.
  r = await call(client, 'remember', {
    text: 'The user asked to be reminded about the dentist by email.',
    meta: ['source=email'],
  });
  assert.ok(!r.isError, text(r));
  r = await call(client, 'recall', { query: 'dentist reminder', meta: ['source=email'] });
  assert.ok(!r.isError, text(r));
  assert.ok(r.structuredContent.entries.length >= 1);
  assert.ok(r.structuredContent.entries.every((e) => /dentist/.test(e.text)));
  assert.deepEqual(r.structuredContent.entries[0].meta, ['source=email']);
  r = await call(client, 'recall', { query: 'dentist reminder', meta: ['source=chat'] });
  assert.match(text(r), /Nothing relevant was found/);

  // Forget the trip: recall no longer finds it, the other entries stay.
  r = await call(client, 'recall', { query: 'where does the user fly in March?', k: 8 });
  const trip = r.structuredContent.entries.find((e) => /Lisbon/.test(e.text));
  assert.ok(trip, 'the trip is found before the forget');
  r = await call(client, 'forget', { seq: trip.seq });
  assert.ok(!r.isError, text(r));
  assert.equal(r.structuredContent.forgotten, 1);
  r = await call(client, 'forget', { seq: trip.seq, through: trip.seq - 1 });
  assert.equal(r.isError, true);
  r = await call(client, 'recall', { query: 'where does the user fly in March?', k: 8 });
  assert.ok(!r.isError, text(r));
  assert.doesNotMatch(text(r), /Lisbon/);

  // Recall again: another question, another entry.
  r = await call(client, 'recall', { query: 'tea or coffee in the morning', k: 2 });
  assert.match(text(r), /green tea/);
  await client.ping();
  await client.close();

  if (mode === 'stdio') {
    // Read-only: remember and forget are neither listed nor callable.
    const ro = await open(true);
    const l = await ro.client.listTools();
    assert.ok(!l.tools.some((x) => x.name === 'remember' || x.name === 'forget'));
    await assert.rejects(call(ro.client, 'forget', { seq: 0 }), /unknown tool/);
    await assert.rejects(call(ro.client, 'remember', { text: 'x' }), /unknown tool/);
    await ro.client.close();
  } else {
    await rawHttp(rest[0]);
  }
}

// What the SDK does not exercise: the transport's refusals.
async function rawHttp(url) {
  const json = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const ping = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
  let res = await fetch(url, { method: 'GET', headers: { accept: 'text/event-stream' } });
  assert.equal(res.status, 405);
  res = await fetch(url, { method: 'POST', headers: { ...json, origin: 'http://evil.example' }, body: ping });
  assert.equal(res.status, 403);
  res = await fetch(url, { method: 'POST', headers: { ...json, 'mcp-protocol-version': '1999-01-01' }, body: ping });
  assert.equal(res.status, 400);
  res = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: ping });
  assert.equal(res.status, 415);
  res = await fetch(new URL('/other', url), { method: 'POST', headers: json, body: ping });
  assert.equal(res.status, 404);
  res = await fetch(url, { method: 'POST', headers: json, body: '{"jsonrpc":"2.0","id":' });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).error.code, -32700);
  res = await fetch(url, { method: 'POST', headers: json, body: '{"jsonrpc":"2.0","method":"notifications/initialized"}' });
  assert.equal(res.status, 202);
}

try {
  await session();
  console.log(`session.mjs ${mode}: ok`);
  process.exit(0);
} catch (e) {
  console.error(`session.mjs ${mode}: FAILED:`, e);
  process.exit(1);
}
