//! What every firmware binary needs around `main`: the defmt transport, the way out of QEMU,
//! and handlers that report a panic or a fault and exit instead of looping forever.
use cortex_m_rt::{ExceptionFrame, exception};

// Linked for their side effects: the critical section defmt takes, and defmt's global
// logger (frames to semihosting stdout, which QEMU writes to its own stdout).
use cortex_m as _;
use defmt_semihosting as _;

/// Exit status of a panic.
const PANIC_STATUS: i32 = 101;
/// Exit status of a HardFault.
const FAULT_STATUS: i32 = 102;

/// Ends the program: QEMU (`-semihosting-config enable=on`) exits with `status`.
pub fn exit(status: i32) -> ! {
    semihosting::process::exit(status)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(PANIC_STATUS)
}

// cortex-m-rt's default HardFault loops forever, which under QEMU is a hang until the
// timeout; this says where the fault happened and exits at once.
#[allow(unsafe_code)] // cortex-m-rt requires the handler to be an `unsafe fn`; it does nothing unsafe.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!("HardFault at pc {=u32:#010x}", frame.pc());
    exit(FAULT_STATUS)
}
