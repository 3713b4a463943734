from django.urls import path

from jobs import views
from security import views as security_views

app_name = "jobs"
urlpatterns = [
    path("", views.job_list, name="list"),
    path("upload/", views.upload, name="upload"),
    path("profile/", views.profile, name="profile"),
    path("<str:job_id>/", views.job_detail, name="detail"),
    path("<str:job_id>/certificate/", security_views.certificate_page, name="certificate"),
    path("<str:job_id>/archive", security_views.archive_download, name="archive"),
]
