"""SMS and chat notifications: `messages.create` here is Twilio's, `chat_postMessage` Slack's."""

import os

from slack_sdk import WebClient
from twilio.rest import Client

client = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"])
slack_client = WebClient(token=os.environ["SLACK_BOT_TOKEN"])


def send_sms(to: str, body: str) -> str:
    message = client.messages.create(to=to, from_=os.environ["TWILIO_FROM"], body=body)
    return message.sid


def notify(channel: str, text: str) -> None:
    slack_client.chat_postMessage(channel=channel, text=text)


def send_with(twilio_client, to: str, body: str) -> None:
    twilio_client.messages.create(to=to, body=body)
