"""Bookinfo ``productpage``: the HTML page a person looks at, and a small JSON API.

The page shows the book's details (from ``details``) and its reviews (from ``reviews``).  Reviews
from v2 carry black stars and from v3 red stars, each star a
``<span class="glyphicon glyphicon-star" style="color:black">`` so a probe can count them.
Signing in (``POST /login``) sets a ``user`` cookie; while it is set, every call downstream carries
``end-user: <name>``, which is what Istio's user-based routing matches.
"""

from __future__ import annotations

import html
import http.cookies
import re
import urllib.parse
from typing import Any

from bookinfo._http import Downstream, DownstreamError, Handler, Identity, parse_args, serve
from bookinfo.catalogue import PRODUCTS

# Upstream productpage (istio/istio samples/bookinfo/src/productpage/productpage.py,
# getProductDetails / getProductReviews / getProductRatings) gives each call 3 s, and calls
# reviews twice whatever went wrong the first time: a connection failure, a timeout, or any answer
# other than 200 (a 504 from the proxy's route timeout included).  That second try is the
# "hard-coded retry" Istio's Request Timeouts task and the "3 s plus one retry, 6 s in all" of its
# Fault Injection task rely on.
DETAILS_TIMEOUT_SECONDS = 3.0
REVIEWS_TIMEOUT_SECONDS = 3.0
RATINGS_TIMEOUT_SECONDS = 3.0
REVIEWS_ATTEMPTS = 2
DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
MAX_STARS = 5

STYLESHEET = b"""
body { font-family: sans-serif; margin: 0; }
.navbar { background: #222; color: #eee; padding: 0.6em 1em; display: flex; justify-content: space-between; }
.navbar a, .navbar button { color: #eee; }
.content { padding: 1em 2em; }
.details dt { font-weight: bold; }
.review { border-left: 3px solid #ccc; margin: 1em 0; padding: 0.2em 1em; }
.error { color: #a00; font-weight: bold; }
.glyphicon-star::before { content: "\\2605"; }
.glyphicon-star-empty::before { content: "\\2606"; }
"""


def render_stars(rating: dict[str, Any]) -> str:
    if "error" in rating:
        return f'<p class="error ratings-error">{html.escape(str(rating["error"]))}</p>'
    stars = max(0, min(MAX_STARS, int(rating.get("stars", 0))))
    color = html.escape(str(rating.get("color", "black")))
    full = f'<span class="glyphicon glyphicon-star" style="color:{color}"></span>' * stars
    empty = f'<span class="glyphicon glyphicon-star-empty" style="color:{color}"></span>' * (MAX_STARS - stars)
    return f'<p class="stars" data-star-color="{color}" data-stars="{stars}">{full}{empty}</p>'


def render_page(product: dict[str, Any], user: str, details: dict[str, Any] | None,
                reviews: dict[str, Any] | None, reviews_failed_version: str = "") -> str:
    title = html.escape(product["title"])
    if user:
        account = (f'<span class="user">User: {html.escape(user)}</span> '
                   '<a class="logout" href="/logout">Sign out</a>')
    else:
        account = ('<form class="login" method="post" action="/login">'
                   '<input name="username" placeholder="User Name"> '
                   '<input name="passwd" type="password" placeholder="Password"> '
                   '<button type="submit">Sign in</button></form>')
    if details is None:
        details_html = ('<h4 class="error">Error fetching product details!</h4>'
                        f'<p class="error details-error">{DETAILS_UNAVAILABLE}</p>')
    else:
        rows = "".join(
            f"<dt>{html.escape(label)}:</dt><dd>{html.escape(str(details.get(key, '')))}</dd>"
            for label, key in (("Type", "type"), ("Pages", "pages"), ("Publisher", "publisher"),
                               ("Language", "language"), ("ISBN-10", "ISBN-10"), ("ISBN-13", "ISBN-13")))
        details_html = f'<h4>Book Details</h4><dl class="details">{rows}</dl>'
    if reviews is None:
        failed_by = (f' data-failed-version="{html.escape(reviews_failed_version)}"' if reviews_failed_version
                     else "")
        reviews_html = ('<h4 class="error">Error fetching product reviews!</h4>'
                        f'<p class="error reviews-error"{failed_by}>{REVIEWS_UNAVAILABLE}</p>')
    else:
        blocks = []
        for review in reviews.get("reviews", []):
            stars = render_stars(review["rating"]) if "rating" in review else ""
            blocks.append(f'<blockquote class="review"><p>{html.escape(review.get("text", ""))}</p>'
                          f'<small>{html.escape(review.get("reviewer", ""))}</small>{stars}</blockquote>')
        served_by = html.escape(str(reviews.get("podname", "")))
        reviews_html = (f'<h4>Book Reviews</h4>{"".join(blocks)}'
                        f'<p class="served-by">Reviews served by: <span class="podname">{served_by}</span></p>')
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>Simple Bookstore App</title><link rel=\"stylesheet\" href=\"/static/bookinfo.css\"></head>"
        f'<body><nav class="navbar"><span>BookInfo Sample</span>{account}</nav>'
        f'<div class="content"><h3 class="title">{title}</h3>'
        f'<p class="summary">{product["descriptionHtml"]}</p>'
        f'<div class="row"><div class="col details-col">{details_html}</div>'
        f'<div class="col reviews-col">{reviews_html}</div></div></div></body></html>\n'
    )


INDEX_PAGE = (
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Simple Bookstore App</title></head>"
    "<body><h3>Hello! This is a simple bookstore application consisting of three services as shown "
    "below</h3><p>productpage &rarr; details, reviews &rarr; ratings</p>"
    '<p><a href="/productpage?u=normal">Normal user</a></p>'
    '<p><a href="/productpage?u=test">Test user</a></p></body></html>\n'
)


class ProductPageHandler(Handler):
    def current_user(self) -> str:
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return ""
        morsel = cookie.get("user")
        return morsel.value if morsel else ""

    def downstream_headers(self) -> dict[str, str]:
        headers = self.incoming_headers()
        user = self.current_user()
        if user:
            headers["end-user"] = user
        return headers

    def fetch(self, service: str, path: str, timeout: float, attempts: int = 1) -> dict[str, Any] | None:
        downstream: Downstream = self.downstream
        for _attempt in range(max(1, attempts)):
            try:
                return downstream.get_json(service, path, self.downstream_headers(), timeout)
            except DownstreamError as error:
                self.failed_versions[service] = error.version
        return None

    def redirect(self, location: str, cookie: str | None = None) -> None:
        headers = {"Location": location}
        if cookie is not None:
            headers["Set-Cookie"] = cookie
        self.send_body(302, b"", "text/plain", headers)

    def handle_get(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/":
            self.send_body(200, INDEX_PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/productpage":
            self.failed_versions: dict[str, str] = {}
            product = PRODUCTS[0]
            details = self.fetch("details", f"/details/{product['id']}", DETAILS_TIMEOUT_SECONDS)
            reviews = self.fetch("reviews", f"/reviews/{product['id']}", REVIEWS_TIMEOUT_SECONDS,
                                 REVIEWS_ATTEMPTS)
            page = render_page(product, self.current_user(), details, reviews,
                               self.failed_versions.get("reviews", ""))
            self.send_body(200, page.encode(), "text/html; charset=utf-8")
        elif path == "/logout":
            self.redirect("/productpage", "user=; Max-Age=0; Path=/")
        elif path.startswith("/static/"):
            self.send_body(200, STYLESHEET, "text/css")
        elif path == "/api/v1/products":
            self.send_json(200, [{"id": p["id"], "title": p["title"], "descriptionHtml": p["descriptionHtml"]}
                                 for p in PRODUCTS])
        elif match := re.fullmatch(r"/api/v1/products/(\d+)(/reviews|/ratings)?", path):
            product_id, part = match.group(1), match.group(2)
            if part == "/reviews":
                answer = self.fetch("reviews", f"/reviews/{product_id}", REVIEWS_TIMEOUT_SECONDS,
                                    REVIEWS_ATTEMPTS)
                error = REVIEWS_UNAVAILABLE
            elif part == "/ratings":
                answer = self.fetch("ratings", f"/ratings/{product_id}", RATINGS_TIMEOUT_SECONDS)
                error = "Sorry, product ratings are currently unavailable for this book."
            else:
                answer = self.fetch("details", f"/details/{product_id}", DETAILS_TIMEOUT_SECONDS)
                error = DETAILS_UNAVAILABLE
            if answer is None:
                self.send_json(503, {"error": error})
            else:
                self.send_json(200, answer)
        else:
            super().handle_get(path, query)

    def handle_post(self, path: str, query: dict[str, list[str]]) -> None:
        if path != "/login":
            super().handle_post(path, query)
            return
        form = urllib.parse.parse_qs(self.read_body().decode(errors="replace"))
        user = (form.get("username") or [""])[0].strip()
        if not user:
            self.redirect("/productpage")
            return
        cookie = http.cookies.SimpleCookie()
        cookie["user"] = user
        cookie["user"]["path"] = "/"
        self.redirect("/productpage", cookie["user"].OutputString())


def main(argv: list[str] | None = None) -> None:
    args = parse_args("productpage", argv)
    serve(ProductPageHandler, Identity("productpage", args.version), args)


if __name__ == "__main__":
    main()
