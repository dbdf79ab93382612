#!/bin/sh
# /init of the node (rdinit=/init). runc cannot pivot_root out of the
# initramfs itself (the kernel's rootfs has no parent mount: EINVAL), and every
# container start pivots, so the userspace moves onto a tmpfs first and systemd
# starts there, the way an initrd hands over to the real root. switch_root
# empties the initramfs afterwards, so its memory is given back.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /newroot
mount -t tmpfs -o mode=0755,size=100% node-root /newroot || exec /bin/sh
for entry in /* /.[!.]*; do
    case $entry in
    /newroot | /proc | /sys | /dev | /init | '/.[!.]*') ;;
    *) cp -a "$entry" /newroot/ ;;
    esac
done
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp
exec switch_root /newroot /lib/systemd/systemd
