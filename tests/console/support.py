"""What console tests share: a page's HTML as text."""


def html(response) -> str:
    return response.content.decode()
