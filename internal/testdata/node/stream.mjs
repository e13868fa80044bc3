// Streams a chat completion (and makes one non-streamed call) with the
// official OpenAI Node SDK against the base URL given as the first argument,
// then prints one JSON line with what it received. Run by proxy/node_test.go.
import OpenAI from "openai";

const baseURL = process.argv[2];
if (!baseURL) {
  console.error("usage: node stream.mjs BASE_URL (e.g. http://127.0.0.1:8001/v1)");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: "sk-node-test", maxRetries: 0, timeout: 30000 });

const stream = await client.chat.completions.create({
  model: "m",
  messages: [{ role: "user", content: "hi" }],
  max_tokens: 6,
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let chunks = 0;
let usage = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.choices.length > 0) text += chunk.choices[0].delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
// The SDK picks its parser from Content-Type; vbench's test server sends
// none on plain completions, so read the raw response and parse it here.
const raw = await client.chat.completions
  .create({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 3 })
  .asResponse();
const plain = JSON.parse(await raw.text());
console.log(JSON.stringify({ text, chunks, usage, plain: plain.choices[0].message.content }));
