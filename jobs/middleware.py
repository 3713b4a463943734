from __future__ import annotations

from django.shortcuts import redirect
from django.urls import reverse


class OneTimePasswordMiddleware:
    """A user created with a one-time password (the first admin) must choose a new one first."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            profile = getattr(user, "profile", None)
            allowed = {
                reverse("password_change"),
                reverse("password_change_done"),
                reverse("logout"),
            }
            if profile is not None and profile.must_change_password and request.path not in allowed:
                return redirect("password_change")
        return self.get_response(request)
