const twilio = require("twilio");

const client = twilio(process.env.TWILIO_ACCOUNT_SID, process.env.TWILIO_AUTH_TOKEN);

async function notify(to, body) {
  const message = await client.messages.create({ to, from: process.env.TWILIO_FROM, body });
  return message.sid;
}

module.exports = { notify };
