"""Settings of the Shrike demo project: a plain Django project reporting errors with sentry-sdk.

The only Shrike-specific thing here is the DSN in `.env`; this is the setup of any Django project
that uses Sentry.
"""
from pathlib import Path

import sentry_sdk
from decouple import config
from sentry_sdk.integrations.django import DjangoIntegration

sentry_sdk.init(
    dsn=config("SENTRY_DSN"),
    integrations=[DjangoIntegration()],
    environment=config("SENTRY_ENVIRONMENT", default="development"),
    release=config("SENTRY_RELEASE", default="shrikedemo@1.0.0"),
)

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = config("DJANGO_SECRET_KEY", default="insecure-demo-key-change-me")
DEBUG = config("DJANGO_DEBUG", default=False, cast=bool)
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "errors",
]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "shrikedemo.urls"
TEMPLATES = []
WSGI_APPLICATION = "shrikedemo.wsgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
