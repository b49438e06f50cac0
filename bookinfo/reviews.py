"""Bookinfo ``reviews`` at ``/reviews/<id>``.

v1 shows no ratings and never calls ``ratings``; v2 calls ``ratings`` and shows black stars;
v3 calls ``ratings`` and shows red stars.  When ``ratings`` cannot be reached, v2 and v3 still
answer, with an error in place of each rating, as the original does.
"""

from __future__ import annotations

import re
from typing import Any

from bookinfo._http import Downstream, DownstreamError, Handler, Identity, parse_args, serve
from bookinfo.catalogue import REVIEWS

STAR_COLORS = {"v2": "black", "v3": "red"}
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"
# The original reviews service gives its call to ratings 10 s when its stars are black (v2) and
# 2.5 s otherwise (v3): istio/istio samples/bookinfo/src/reviews/reviews-application/src/main/java/
# application/rest/LibertyRestEndpoint.java, getRatings.  Istio's Fault Injection task relies on the
# 10 s of v2 (jason's version).
RATINGS_TIMEOUT_SECONDS = {"v2": 10.0, "v3": 2.5}


def build_reviews(product_id: int, version: str, pod_name: str, downstream: Downstream,
                  incoming: dict[str, str]) -> dict[str, Any]:
    color = STAR_COLORS.get(version)
    ratings: dict[str, int] | None = None
    ratings_error = None
    if color:
        try:
            answer = downstream.get_json("ratings", f"/ratings/{product_id}", incoming,
                                         timeout=RATINGS_TIMEOUT_SECONDS[version])
            ratings = answer.get("ratings", {})
        except DownstreamError as exc:
            ratings_error = str(exc)
    reviews = []
    for review in REVIEWS:
        entry: dict[str, Any] = dict(review)
        if color:
            if ratings is not None and review["reviewer"] in ratings:
                entry["rating"] = {"stars": ratings[review["reviewer"]], "color": color}
            else:
                entry["rating"] = {"error": RATINGS_UNAVAILABLE}
        reviews.append(entry)
    payload: dict[str, Any] = {"id": str(product_id), "podname": pod_name, "clustername": "lab",
                               "version": version, "reviews": reviews}
    if ratings_error:
        payload["ratings_error"] = ratings_error
    return payload


class ReviewsHandler(Handler):
    def handle_get(self, path: str, query: dict[str, list[str]]) -> None:
        match = re.fullmatch(r"/reviews/(\d+)", path)
        if not match:
            super().handle_get(path, query)
            return
        payload = build_reviews(int(match.group(1)), self.identity.version, self.identity.pod_name,
                                self.downstream, self.incoming_headers())
        self.send_json(200, payload)


def main(argv: list[str] | None = None) -> None:
    args = parse_args("reviews", argv)
    if args.version not in ("v1", "v2", "v3"):
        raise SystemExit(f"reviews: unknown version {args.version!r}; expected v1, v2 or v3")
    serve(ReviewsHandler, Identity("reviews", args.version), args)


if __name__ == "__main__":
    main()
