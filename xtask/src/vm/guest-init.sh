#!/bin/sh
# /init of the test VM: mount the kernel filesystems, run /run-suite.sh with its
# output on the second serial port, report its exit code on the third, power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /root /sys/fs/cgroup
mount -t devpts devpts /dev/pts
chmod 1777 /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
ln -s /proc/self/fd /dev/fd 2>/dev/null
# Loopback up: the daemon tests talk to the daemon's /readyz on 127.0.0.1.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
stty -F /dev/ttyS1 raw -echo; stty -F /dev/ttyS2 raw -echo
sh /run-suite.sh > /dev/ttyS1 2>&1 < /dev/null
echo "VM_EXIT=$?" > /dev/ttyS2
sync; poweroff -f
