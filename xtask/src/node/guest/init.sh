#!/bin/sh
# /init of the node (rdinit=/init). runc cannot pivot_root while the root is
# the kernel's rootfs itself (it has no parent mount: EINVAL, "error jailing
# process inside rootfs"), and every container start pivots. So the root is
# made a mount of its own first, a bind mount of itself moved over /: no copy,
# no memory spent. Then systemd starts there as PID 1.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /proc /newroot
mount -t proc proc /proc
echo "node-init: $(cut -d' ' -f1 /proc/uptime) s after boot: starting systemd" >/dev/console
umount /proc
mount --bind / /newroot
cd /newroot
mount --move . /
exec chroot . /lib/systemd/systemd
