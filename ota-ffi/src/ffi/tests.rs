//! The C ABI's conventions: handles, tags, pointers and text buffers.

use super::*;

#[allow(non_camel_case_types)]
struct ota_a(u32);
unsafe extern "C" fn ota_a_free(p: *mut ota_a) {
    unsafe { free(p) }
}
handle!(ota_a, ota_a_free);

#[allow(non_camel_case_types)]
#[repr(align(16))]
struct ota_b(u8);
unsafe extern "C" fn ota_b_free(p: *mut ota_b) {
    unsafe { free(p) }
}
handle!(ota_b, ota_b_free);

fn status<T>(r: Result<T, Failure>) -> Status {
    r.err().map_or(Status::Ok, |f| f.status)
}

#[test]
fn a_handle_is_read_only_as_its_own_type() {
    let a = new_handle(ota_a(7));
    let b = new_handle(ota_b(9));
    assert_eq!(unsafe { handle_ref(a, "a") }.unwrap().0, 7);
    assert_eq!(unsafe { handle_mut(b, "b") }.unwrap().0, 9);
    let wrong = unsafe { handle_ref(a.cast::<ota_b>(), "b") }.err().unwrap();
    assert_eq!(wrong.status, Status::WrongHandle);
    assert_eq!(wrong.message, "`b` is an ota_a, not an ota_b");
    assert_eq!(
        status(unsafe { handle_ref(b.cast::<ota_a>(), "a") }),
        Status::WrongHandle
    );
    assert_eq!(
        status(unsafe { handle_ref(std::ptr::null::<ota_a>(), "a") }),
        Status::NullPointer
    );
    // Freeing through the wrong type frees nothing.
    unsafe { ota_b_free(a.cast::<ota_b>()) };
    assert!(crate::error::last_error().contains("not freed"));
    assert_eq!(unsafe { handle_ref(a, "a") }.unwrap().0, 7);
    // Taken outside any guarded call: nothing released them.
    release_since(0);
    unsafe {
        ota_a_free(a);
        ota_b_free(b);
        ota_a_free(std::ptr::null_mut());
    }
}

#[test]
fn a_handle_that_saw_a_panic_refuses_every_later_call() {
    use crate::error::{call, last_error};
    let h = new_handle(ota_a(1));
    let other = new_handle(ota_a(2));
    let touch = |h: *mut ota_a| {
        call(|| {
            let a = try_handle!(h);
            assert!(a.0 < 100);
            Ok(())
        })
    };
    assert_eq!(touch(h), Status::Ok);
    // A call panics half-way through changing the handle.
    let s = call(|| {
        let a = try_handle_mut!(h);
        let _ = try_handle!(other);
        a.0 = 100;
        panic!("half-way")
    });
    assert_eq!(s, Status::Panic);
    assert!(last_error().contains("half-way"), "{}", last_error());
    // Every later call refuses both handles it held, by status, without reading them.
    for _ in 0..2 {
        assert_eq!(touch(h), Status::Panic);
        assert!(
            last_error().contains("an earlier call panicked"),
            "{}",
            last_error()
        );
        assert_eq!(touch(other), Status::Panic);
    }
    // A handle the panicking call did not take stays usable, and a call that only
    // failed poisons nothing.
    let fresh = new_handle(ota_a(3));
    let s = call(|| {
        let _ = try_handle!(fresh);
        Err(Failure::new(Status::Invalid, "no"))
    });
    assert_eq!(s, Status::Invalid);
    assert_eq!(touch(fresh), Status::Ok);
    // Their `_free` still frees them.
    unsafe {
        ota_a_free(h);
        ota_a_free(other);
        ota_a_free(fresh);
    }
}

#[test]
fn a_length_above_isize_max_is_refused_with_a_status() {
    let byte = 0u8;
    for n in [isize::MAX as usize + 1, usize::MAX] {
        let f = unsafe { slice_of(&raw const byte, n, "p", "n") }.unwrap_err();
        assert_eq!(f.status, Status::InvalidArgument);
        assert_eq!(f.message, format!("`n` is {n}, more than any object holds"));
    }
    // A count of values is bounded by their size.
    let word = 0u64;
    let n = isize::MAX as usize / 8 + 1;
    let f = unsafe { slice_of(&raw const word, n, "p", "n") }.unwrap_err();
    assert_eq!(f.status, Status::InvalidArgument);
    // Through an exported function, as C calls it: a status, not an abort.
    let mut out = std::ptr::null_mut();
    let s = unsafe { crate::ota_package_parse(c"{}".as_ptr(), usize::MAX, &mut out) };
    assert_eq!(s, Status::InvalidArgument);
    assert!(out.is_null());
    assert_eq!(
        unsafe { slice_of(&raw const byte, 1, "p", "n") }.unwrap(),
        &[0]
    );
}

#[test]
fn try_out_refuses_null_before_any_work() {
    fn make(out: *mut *mut ota_a) -> Result<(), Failure> {
        let out = try_out!(out);
        out.write(new_handle(ota_a(1)));
        Ok(())
    }
    let failure = make(std::ptr::null_mut()).err().unwrap();
    assert_eq!(failure.status, Status::NullPointer);
    assert_eq!(failure.message, "`out` is NULL");
    let mut h = std::ptr::null_mut();
    make(&mut h).unwrap();
    assert_eq!(unsafe { handle_ref(h, "h") }.unwrap().0, 1);
    release_since(0);
    unsafe { ota_a_free(h) };
}

#[test]
fn a_callback_cannot_take_or_free_the_handle_its_call_holds() {
    use crate::error::{call, last_error};
    let h = new_handle(ota_a(1));
    let other = new_handle(ota_a(2));
    // What a callback does, run inside a call that holds `h` to change it.
    let inner = |h: *mut ota_a| -> Vec<Status> {
        vec![
            call(|| {
                try_handle_mut!(h).0 += 1;
                Ok(())
            }),
            call(|| {
                let _ = try_handle!(h);
                Ok(())
            }),
        ]
    };
    let mut seen = Vec::new();
    let mut message = String::new();
    let s = call(|| {
        let a = try_handle_mut!(h);
        seen = inner(h);
        message = last_error();
        // `_free` of the held handle frees nothing (its memory is still in use here).
        unsafe { ota_a_free(h) };
        message.push('|');
        message.push_str(&last_error());
        a.0 += 10;
        // Another handle is the callback's to use.
        assert_eq!(inner(other), vec![Status::Ok, Status::Ok]);
        Ok(())
    });
    assert_eq!(s, Status::Ok);
    assert_eq!(seen, vec![Status::InvalidArgument, Status::InvalidArgument]);
    assert!(
        message.contains("`h` is in use by the call whose callback this is"),
        "{message}"
    );
    assert!(
        message.contains("not freed: `handle` is in use"),
        "{message}"
    );
    assert_eq!(unsafe { handle_ref(h, "h") }.unwrap().0, 11);
    assert_eq!(unsafe { handle_ref(other, "other") }.unwrap().0, 3);
    // Held only to be read, it may be read again (one package passed twice), not changed.
    let s = call(|| {
        let _ = try_handle!(h);
        let _ = try_handle!(h);
        assert_eq!(inner(h)[0], Status::InvalidArgument);
        Ok(())
    });
    assert_eq!(s, Status::Ok);
    // Once the call returned, the handle is free to take and to free.
    release_since(0);
    assert_eq!(inner(h), vec![Status::Ok, Status::Ok]);
    unsafe {
        ota_a_free(h);
        ota_a_free(other);
    }
}

/// A C thread-exit destructor (a `pthread_key_create` one, say) that frees its handles
/// runs after the thread's Rust thread-locals are destroyed: the calls still work, and
/// nothing aborts the process.
#[test]
fn calls_from_a_thread_exit_destructor_after_the_thread_locals_are_gone_still_work() {
    use crate::document::{ota_profile_free, ota_profile_parse, ota_profile_to_json};
    use std::sync::mpsc;

    /// Frees its profile when the thread exits, and says what it saw.
    struct AtExit {
        profile: *mut crate::document::ota_profile,
        said: mpsc::Sender<(bool, Status, Status)>,
    }
    impl Drop for AtExit {
        fn drop(&mut self) {
            let gone = TAKEN.try_with(|_| ()).is_err();
            let mut n = 0usize;
            let to_json =
                unsafe { ota_profile_to_json(self.profile, std::ptr::null_mut(), 0, &mut n) };
            let mut out = std::ptr::null_mut();
            let bad = unsafe { ota_profile_parse(c"{".as_ptr(), 1, &mut out) };
            unsafe { ota_profile_free(self.profile) };
            let _ = self.said.send((gone, to_json, bad));
        }
    }
    thread_local! {
        static AT_EXIT: RefCell<Option<AtExit>> = const { RefCell::new(None) };
    }

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Registered first, so destroyed last: after the library's thread-locals.
        AT_EXIT.with(|_| ());
        let json =
            br#"{"device_id":"dev-1","device_type":"t","hardware_profile":"h","arch":"arm64"}"#;
        let mut profile = std::ptr::null_mut();
        let s = unsafe { ota_profile_parse(json.as_ptr().cast(), json.len(), &mut profile) };
        assert_eq!(s, Status::Ok, "{}", crate::error::last_error());
        AT_EXIT.with(|a| *a.borrow_mut() = Some(AtExit { profile, said: tx }));
    })
    .join()
    .unwrap();
    let (gone, to_json, bad) = rx.recv().unwrap();
    assert!(
        gone,
        "the library's thread-locals were still there: the test tests nothing"
    );
    assert_eq!(to_json, Status::InsufficientSize);
    assert_eq!(bad, Status::JsonSyntax);
}
