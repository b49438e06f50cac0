"""The sample's fixed data: one book, its details, two reviews and their ratings."""

from __future__ import annotations

from typing import Any

PRODUCTS: list[dict[str, Any]] = [
    {
        "id": 0,
        "title": "The Comedy of Errors",
        "descriptionHtml": (
            "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: "
            "Two pairs of identical twins, separated at birth, turn up in the same city on the "
            "same day, and everybody mistakes everybody for somebody else."
        ),
    },
]

DETAILS: dict[str, Any] = {
    "author": "William Shakespeare",
    "year": 1595,
    "type": "paperback",
    "pages": 200,
    "publisher": "PublisherA",
    "language": "English",
    "ISBN-10": "1234567890",
    "ISBN-13": "123-1234567890",
}

REVIEWS: list[dict[str, str]] = [
    {"reviewer": "Reviewer1",
     "text": "A farce that never lets up: the twin confusion is silly, quick and very funny."},
    {"reviewer": "Reviewer2",
     "text": "Short and light, an easy first Shakespeare; the ending ties every thread."},
]

RATINGS: dict[str, int] = {"Reviewer1": 5, "Reviewer2": 4}
