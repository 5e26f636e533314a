import Anthropic from "@anthropic-ai/sdk";

const anthropic = new Anthropic({
  baseURL: process.env.LITELLM_PROXY_URL,
  apiKey: process.env.LITELLM_KEY,
});

export async function review(diff: string) {
  const msg = await anthropic.messages.create({ model: "frontier", max_tokens: 1024, messages: [{ role: "user", content: diff }] });
  return msg.content;
}
