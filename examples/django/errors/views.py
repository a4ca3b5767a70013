"""Views that fail the way real code does, so their errors reach Shrike through sentry-sdk."""
import sentry_sdk
from django.http import HttpResponse


def index(request):
    return HttpResponse("ok\n")


def boom(request):
    # A ZeroDivisionError, reported by sentry-sdk's Django integration with a tag of our own.
    sentry_sdk.set_tag("feature", "ratio")
    ratio = 1 / 0
    return HttpResponse(str(ratio))


def missing(request):
    # A different error, grouped into a second issue.
    settings = {}
    return HttpResponse(settings["theme"])
