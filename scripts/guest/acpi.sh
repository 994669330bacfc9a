#!/bin/sh
# vx86-acpi: the ACPI tests on -cpu qemu64,+apic (the host side is
# tests/acpi_guest.rs). Loads the modules in /lib/modules/acpi-load-order
# (the ACPI button driver, evdev, virtio_pci, virtio_blk), then:
#   vx86.pwrbtn=1   finds the "Power Button" input device (Linux's ACPI
#                   button driver on the fixed power button), prints
#                   PWRBTN-READY, reads one input event from it (the
#                   monitor's system_powerdown), prints PWRBTN-EVENT and
#                   powers off
#   vx86.hotplug=1  prints HOTPLUG-READY, waits for a virtio disk hot-added
#                   through ACPI (acpiphp), writes a marker line to it with
#                   fsync, prints HOTPLUG-WRITTEN, waits for it to be
#                   removed (device_del), lists the PCI devices and powers
#                   off
cmdline=$(cat /proc/cmdline)
has() { case " $cmdline " in *" $1 "*) return 0 ;; esac; return 1; }
for m in $(cat /lib/modules/acpi-load-order); do
    insmod "/lib/modules/$m" 2>/dev/null
done
# Waits up to $2 tenths of a second for the test `$1` to hold.
wait_until() {
    i=0
    while ! eval "$1" && [ $i -lt "$2" ]; do sleep 0.1; i=$((i + 1)); done
    eval "$1"
}

if has vx86.pwrbtn=1; then
    ev=$(awk '/^N: Name="Power Button"/ { found = 1 }
              found && /^H: Handlers=/ { for (i = 2; i <= NF; i++) if ($i ~ /(^|=)event[0-9]/) { print $i; exit } }' \
         /proc/bus/input/devices | sed 's/^Handlers=//')
    if [ -z "$ev" ] || [ ! -c "/dev/input/$ev" ]; then
        echo "PWRBTN-NO-DEVICE"
        cat /proc/bus/input/devices
        poweroff -f
    fi
    # struct input_event is 24 bytes on x86-64: the first is KEY_POWER down.
    # Bytes 16-17 are its type (EV_KEY = 0001), 18-19 its code (KEY_POWER =
    # 0074), little-endian. The reader is running before PWRBTN-READY:
    # evdev keeps no events for readers still to come.
    dd if="/dev/input/$ev" of=/tmp/ev bs=24 count=1 2>/dev/null &
    sleep 1
    echo "PWRBTN-READY $ev"
    wait
    set -- $(od -An -tx1 -v /tmp/ev | tr '\n' ' ')
    shift 16
    echo "PWRBTN-EVENT type=$2$1 code=$4$3"
    poweroff -f
fi

if has vx86.hotplug=1; then
    echo "HOTPLUG-READY $(ls /sys/bus/pci/devices | tr '\n' ' ')"
    if ! wait_until '[ -b /dev/vda ]' 6000; then
        echo "HOTPLUG-NO-DISK"
        poweroff -f
    fi
    echo "HOTPLUG-ADDED size=$(cat /sys/block/vda/size) pci=$(ls /sys/bus/pci/devices | tr '\n' ' ')"
    printf 'VX86-HOTPLUG-MARKER written by the guest\n' | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null
    sync
    echo "HOTPLUG-WRITTEN"
    if ! wait_until '[ ! -b /dev/vda ]' 6000; then
        echo "HOTPLUG-STILL-THERE"
        poweroff -f
    fi
    echo "HOTPLUG-REMOVED pci=$(ls /sys/bus/pci/devices | tr '\n' ' ')"
    poweroff -f
fi
