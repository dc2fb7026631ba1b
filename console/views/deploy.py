"""Deploy from your machine: the exact lines that add the SDK (`chalkweb-sdk`, from this
server's own index, sdk/index.py) to a project with uv or pip, and deploy with it. The
lines pin the index, so a resolver can never take PyPI's `chalkcompute` (Chalk's own SDK) or a
look-alike instead; the README's "Deploy from your machine" shows the same."""

from django.conf import settings
from django.template.response import TemplateResponse

from console.access import console_view
from sdk.distribution import DISTRIBUTION


def deploy_lines() -> dict[str, str]:
    """What the deploy box needs: the server's public URL (CHALK_PUBLIC_URL, as users reach it)
    and its index."""
    public_url = settings.CHALK_PUBLIC_URL.rstrip("/")
    return {"public_url": public_url, "index_url": f"{public_url}/simple/", "sdk": DISTRIBUTION}


@console_view
def deploy_page(request):
    return TemplateResponse(
        request, "console/deploy.html", {"section": "deploy", "deploy": deploy_lines()}
    )
