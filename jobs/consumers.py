"""Live job updates: the page joins its job's group and re-renders fragments from the row."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from jobs import selectors
from jobs.models import Job
from jobs.notify import group_name, remember_server_loop


class JobConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if not await database_sync_to_async(Job.objects.filter(pk=job_id, owner=user).exists)():
            await self.close(code=4404)
            return
        remember_server_loop()
        self.job_id = job_id
        self.group = group_name(job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_fragments()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_changed(self, event: dict) -> None:
        await self.send_fragments()

    async def send_fragments(self) -> None:
        html = await database_sync_to_async(self._render)()
        await self.send(text_data=html)

    def _render(self) -> str:
        job = Job.objects.select_related("owner").get(pk=self.job_id)
        context = {"job": job, "result": selectors.result_document(job), "oob": True}
        return render_to_string("jobs/_progress.html", context)
