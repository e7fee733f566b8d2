//! The device's storage as C callbacks: `ota_device_io`, and the core's `DeviceIo` over it.

use std::ffi::{c_int, c_void};
use std::io::{self, Write};

use ota_core::Status;
use ota_core::agent::DeviceIo;
use ota_core::download::Staging;

use crate::error::Failure;
use crate::ffi::{CallbackWriter, ota_write_fn};

/// The device's storage, as callbacks the host implements. Each returns 0 on success.
///
/// - `stage_write(ctx, offset, data, len)`: store a verified chunk at `offset` of the staging
///   area.
/// - `stage_read(ctx, offset, buf, len)`: read `len` staged bytes at `offset` into `buf`.
/// - `slot_open(ctx)`: empty the inactive slot for a new install.
/// - `slot_write(ctx, data, len)`: append to the inactive slot.
/// - `slot_flush(ctx)`: make what was written to the inactive slot durable.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct ota_device_io {
    /// Passed back to every callback untouched.
    pub ctx: *mut c_void,
    /// Stores a chunk in staging.
    pub stage_write: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u64, data: *const u8, len: usize) -> c_int,
    >,
    /// Reads staged bytes.
    pub stage_read: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int,
    >,
    /// Empties the inactive slot.
    pub slot_open: Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>,
    /// Appends to the inactive slot.
    pub slot_write: ota_write_fn,
    /// Makes the inactive slot durable.
    pub slot_flush: Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>,
}

fn rc(what: &str, code: c_int) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!("{what} returned {code}")))
    }
}

/// `ota_device_io` as the core's `DeviceIo`.
#[derive(Clone, Copy)]
pub(crate) struct HostIo(ota_device_io);

impl HostIo {
    pub(crate) fn new(io: &ota_device_io) -> Result<Self, Failure> {
        let missing =
            |what: &str| Failure::new(Status::NullPointer, format!("`io->{what}` is NULL"));
        io.stage_write.ok_or_else(|| missing("stage_write"))?;
        io.stage_read.ok_or_else(|| missing("stage_read"))?;
        io.slot_open.ok_or_else(|| missing("slot_open"))?;
        io.slot_write.ok_or_else(|| missing("slot_write"))?;
        io.slot_flush.ok_or_else(|| missing("slot_flush"))?;
        Ok(HostIo(*io))
    }
}

// The callbacks and `ctx` belong to the host, which promises they stay usable while the agent
// lives; the agent calls them only from the thread that calls into it.
unsafe impl Send for HostIo {}

impl Staging for HostIo {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let f = self
            .0
            .stage_write
            .ok_or_else(|| io::Error::other("no stage_write"))?;
        rc("stage_write", unsafe {
            f(self.0.ctx, offset, data.as_ptr(), data.len())
        })
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let f = self
            .0
            .stage_read
            .ok_or_else(|| io::Error::other("no stage_read"))?;
        rc("stage_read", unsafe {
            f(self.0.ctx, offset, buf.as_mut_ptr(), buf.len())
        })
    }
}

struct SlotWriter {
    io: HostIo,
    out: CallbackWriter,
}

unsafe impl Send for SlotWriter {}

impl Write for SlotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let f = self
            .io
            .0
            .slot_flush
            .ok_or_else(|| io::Error::other("no slot_flush"))?;
        rc("slot_flush", unsafe { f(self.io.0.ctx) })
    }
}

impl DeviceIo for HostIo {
    fn open_slot(&mut self) -> io::Result<Box<dyn Write + Send>> {
        let f = self
            .0
            .slot_open
            .ok_or_else(|| io::Error::other("no slot_open"))?;
        rc("slot_open", unsafe { f(self.0.ctx) })?;
        let out = CallbackWriter::new(self.0.slot_write, self.0.ctx)
            .map_err(|f| io::Error::other(f.message))?;
        Ok(Box::new(SlotWriter { io: *self, out }))
    }
}
