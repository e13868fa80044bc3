// Application traffic for the app-traffic test (internal/apptraffic): the
// official OpenAI Node SDK sends a mix of chat and completion requests, the
// way an application would, to the base URL given as the first argument,
// with the model named by the second. One 3-turn chat conversation runs
// alongside independent requests:
//
//   conversation: turn 1 (streamed) → think 300 ms → turn 2 (streamed, with
//   the answer of turn 1 in its history) → think 400 ms → turn 3 (not
//   streamed)
//   independent: a streamed completion at 150 ms, a non-streamed completion
//   at 600 ms, a non-streamed chat request at 1000 ms
//
// It prints one JSON line: per request, its name and the answer text.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
if (!baseURL || !model) {
  console.error("usage: node apptraffic.mjs BASE_URL MODEL (e.g. http://127.0.0.1:8001/v1 sim-tiny)");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: "sk-app-secret", maxRetries: 0, timeout: 30000 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const at = (ms) => sleep(Math.max(0, t0 + ms - Date.now()));
const done = [];

async function streamChat(messages, maxTokens) {
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) text += chunk.choices[0].delta?.content ?? "";
  }
  return text;
}

// Non-streamed calls: read the raw body (the SDK picks its parser from
// Content-Type, which servers do not all send).
async function plain(promise) {
  const raw = await promise.asResponse();
  if (!raw.ok) throw new Error(`HTTP ${raw.status}: ${await raw.text()}`);
  return JSON.parse(await raw.text());
}

async function conversation() {
  const messages = [
    { role: "system", content: "You are a terse travel assistant." },
    { role: "user", content: "Name a city in Italy worth a weekend." },
  ];
  const a1 = await streamChat(messages, 24);
  done.push({ name: "turn1", text: a1 });
  await sleep(300);
  messages.push({ role: "assistant", content: a1 }, { role: "user", content: "What should I eat there?" });
  const a2 = await streamChat(messages, 16);
  done.push({ name: "turn2", text: a2 });
  await sleep(400);
  messages.push({ role: "assistant", content: a2 }, { role: "user", content: "Thanks! One museum?" });
  const r3 = await plain(client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0.2 }));
  done.push({ name: "turn3", text: r3.choices[0].message.content });
}

async function others() {
  await at(150);
  const s = await client.completions.create({
    model, prompt: "Once upon a time, in a small village,", max_tokens: 20, stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  for await (const chunk of s) {
    if (chunk.choices.length > 0) text += chunk.choices[0].text ?? "";
  }
  done.push({ name: "completion-stream", text });
  await at(600);
  const c = await plain(client.completions.create({ model, prompt: [1, 2, 3, 4, 5, 6, 7, 8], max_tokens: 8, top_p: 0.9 }));
  done.push({ name: "completion-plain", text: c.choices[0].text });
  await at(1000);
  const q = await plain(client.chat.completions.create({
    model, messages: [{ role: "user", content: "Say hello in French." }], max_completion_tokens: 6,
    user: "alice@example.com",
  }));
  done.push({ name: "chat-plain", text: q.choices[0].message.content });
}

await Promise.all([conversation(), others()]);
console.log(JSON.stringify({ requests: done }));
