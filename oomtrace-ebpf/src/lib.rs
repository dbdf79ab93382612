#![no_std]
// The library target exists only so the userspace crate can name this package
// as a build-dependency (cargo then rebuilds it when these sources change).
