"""Live job updates: the page joins its job's group and re-renders fragments from the row.

A message from the group is only a nudge: the consumer reads the job row again and sends every
live fragment (jobs/_live.html), so a lost, late or duplicated nudge loses nothing. A render equal
to the last one sent is not sent again (the page would swap identical content, and a reader would
lose a focused link or a text selection), and once the job has ended the connection is closed:
nothing on the page changes any more.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from jobs.models import Job
from jobs.notify import group_name, remember_server_loop

# Close codes in the application range (4000-4999): the page's ws extension does not reconnect
# after them, unlike after 1006/1011/1012/1013.
CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class JobConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return
        # Another user's job is refused exactly like a job that does not exist.
        if not await database_sync_to_async(Job.objects.filter(pk=job_id, owner=user).exists)():
            await self.close(code=CLOSE_NOT_FOUND)
            return
        # The embedded worker threads schedule their notifications on this loop (jobs/notify.py).
        remember_server_loop()
        self.job_id = job_id
        self.last_sent: str | None = None
        self.group = group_name(job_id)
        # Join before the first render: a change between the two is then pushed, not missed.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_fragments()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The page sends nothing; anything it does send is ignored."""

    async def job_changed(self, event: dict) -> None:
        await self.send_fragments()

    async def send_fragments(self) -> None:
        html, final = await database_sync_to_async(self._render)()
        if html != self.last_sent:
            self.last_sent = html
            await self.send(text_data=html)
        if final:
            await self.close()  # 1000: the page's ws extension does not reconnect

    def _render(self) -> tuple[str, bool]:
        from jobs.views import live_context

        job = Job.objects.select_related("owner").get(pk=self.job_id)
        html = render_to_string("jobs/_live.html", {**live_context(job), "oob": True})
        return html, job.is_final
