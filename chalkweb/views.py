from django.contrib.auth.decorators import login_required
from django.template.response import TemplateResponse

from scheduling import selectors


@login_required
def functions_page(request):
    functions = [
        (function, selectors.schedule_description(function.current_version))
        for function in selectors.function_list()
    ]
    return TemplateResponse(request, "console/functions.html", {"functions": functions})
