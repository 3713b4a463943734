"""Profile bookkeeping: every user has a profile; changing the password clears the one-time flag."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_save
from django.dispatch import receiver

from jobs.models import Profile


@receiver(post_save, sender=get_user_model())
def ensure_profile(sender, instance, created, **kwargs) -> None:
    if created:
        Profile.objects.get_or_create(user=instance)


@receiver(user_logged_in)
def ensure_profile_on_login(sender, request, user, **kwargs) -> None:
    Profile.objects.get_or_create(user=user)
