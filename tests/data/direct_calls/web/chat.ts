import OpenAI from "openai";

const client = new OpenAI({ apiKey: process.env.OPENAI_API_KEY });

export async function reply(question: string): Promise<string> {
  const completion = await client.chat.completions.create({ // expect: direct
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: question }],
  });
  return completion.choices[0].message.content ?? "";
}
