"""Public pages of the security app (no login): certificate verification."""

from django.urls import path

from security import views

app_name = "security"
urlpatterns = [
    path("", views.verify, name="verify"),
]
