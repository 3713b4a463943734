"""Create the first administrator with a one-time password, if there is no user at all."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from jobs.models import Profile


class Command(BaseCommand):
    help = "On a first run with no user, create an admin account and print its one-time password."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000/", help="where the site is served"
        )

    def handle(self, *args, username: str, url: str, **options) -> None:
        User = get_user_model()
        if User.objects.exists():
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        Profile.objects.update_or_create(user=user, defaults={"must_change_password": True})
        banner = "=" * 64
        self.stdout.write(
            f"\n{banner}\n  First run: created the administrator account\n"
            f"    user name: {username}\n    one-time password: {password}\n"
            f"  Log in at {url} and choose your own password.\n{banner}\n"
        )
