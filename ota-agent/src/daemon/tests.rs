//! Which refusals of a report are for good.

use super::report_refused;

#[test]
fn a_report_is_dropped_only_when_the_server_refuses_it_for_good() {
    for (status, code) in [
        (400, Some("INVALID_ARGUMENT")),
        (409, Some("FAILED_PRECONDITION")),
        (413, None),
        // No such rollout, said by the API itself: never will be.
        (404, Some("NOT_FOUND")),
    ] {
        assert!(report_refused(status, code), "{status} {code:?}");
    }
    // A proxy's or captive portal's 400, 404 or 409, a revoked credential, a forbidden
    // path, throttling, a server down: kept for later.
    for (status, code) in [
        (400, None),
        (409, None),
        (409, Some("ABORTED")),
        (404, None),
        (401, Some("UNAUTHENTICATED")),
        (403, Some("PERMISSION_DENIED")),
        (408, None),
        (429, None),
        (500, Some("INTERNAL")),
        (503, Some("UNAVAILABLE")),
    ] {
        assert!(!report_refused(status, code), "{status} {code:?}");
    }
}
