"""Run inside `manage.py shell`: wait for one message on $CHANNEL_NAME, print it."""

import asyncio
import json
import os

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


async def receive():
    layer = get_channel_layer()
    return await asyncio.wait_for(layer.receive(os.environ["CHANNEL_NAME"]), 20)


print("RECEIVED " + json.dumps(async_to_sync(receive)()), flush=True)
