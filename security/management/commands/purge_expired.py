"""Destroy archives whose retention period has ended (run it periodically)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from security.retention import purge_expired


class Command(BaseCommand):
    help = (
        "Destroy the encrypted archives of completed jobs whose retention period has ended; "
        "those jobs become 'deleted'. Safe to run at any interval (cron, systemd timer)."
    )

    def handle(self, *args, **options) -> None:
        destroyed = purge_expired()
        self.stdout.write(f"Destroyed {destroyed} expired archive{'s' if destroyed != 1 else ''}.")
