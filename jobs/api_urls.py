from django.urls import path

from jobs import api
from security import views as security_views

app_name = "api"
urlpatterns = [
    path("upload", api.upload, name="upload"),
    path("status/<str:job_id>", api.status, name="status"),
    path("result/<str:job_id>", api.result, name="result"),
    path("proof/public-key", security_views.public_key, name="public-key"),
    path("proof/<str:job_id>.pdf", security_views.certificate_pdf, name="proof-pdf"),
    path("proof/<str:job_id>", api.proof, name="proof"),
]
