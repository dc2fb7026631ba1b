from django.contrib.auth.decorators import login_required
from django.template.response import TemplateResponse


@login_required
def functions_page(request):
    return TemplateResponse(request, "console/functions.html", {"functions": []})
