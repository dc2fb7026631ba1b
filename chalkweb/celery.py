import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chalkweb.settings")

app = Celery("chalkweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
