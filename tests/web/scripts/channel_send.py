"""Run inside `manage.py shell`: send one message to $CHANNEL_NAME."""

import os

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

async_to_sync(get_channel_layer().send)(
    os.environ["CHANNEL_NAME"], {"type": "test.message", "text": "across processes"}
)
print("SENT", flush=True)
