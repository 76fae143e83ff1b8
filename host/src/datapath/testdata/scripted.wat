;; A module for the worker loop's tests: the first byte of each frame says
;; what to do with it.
;;   0x00  forward to the other port (1 - in_port)
;;   0x01  drop, reason `policy`
;;   0x02  consume
;;   0x03  emit a copy on port 1, then consume
;;   0x06  write the count of nfv_process calls since instantiation into
;;         byte 1, then forward to the other port
;;   0xEE  trap (unreachable)
;; nfv_tick emits 14 bytes ("tick" and zeros: an Ethernet header's worth,
;; the shortest frame the host sends) on port 0.
(module
  (import "nfv" "emit" (func $emit (param i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 1024))
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 16) "tick")
  (func (export "nfv_abi_version") (result i32) (i32.const 3))
  (func (export "nfv_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (local.get $p) (local.get $len)) (i32.const 15))
               (i32.const -16)))
    (local.get $p))
  (func (export "nfv_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "nfv_tick") (param i64)
    (drop (call $emit (i32.const 0) (i32.const 16) (i32.const 14))))
  (func (export "nfv_process") (param $descs i32) (param $count i32) (result i32)
    (local $i i32) (local $d i32) (local $frame i32) (local $cmd i32) (local $other i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $d (i32.add (local.get $descs) (i32.mul (local.get $i) (i32.const 24))))
        (local.set $frame (i32.load (local.get $d)))
        (local.set $cmd (i32.load8_u (local.get $frame)))
        (local.set $other
          (i32.or (i32.const 0x01000000)
                  (i32.sub (i32.const 1) (i32.load16_u offset=12 (local.get $d)))))
        (if (i32.eq (local.get $cmd) (i32.const 0xee)) (then unreachable))
        (if (i32.eq (local.get $cmd) (i32.const 0x06))
          (then
            (i32.store8 offset=1 (local.get $frame) (global.get $calls))
            (local.set $cmd (i32.const 0))))
        (if (i32.eq (local.get $cmd) (i32.const 0x03))
          (then
            (drop (call $emit (i32.const 1) (local.get $frame)
                              (i32.load offset=4 (local.get $d))))
            (local.set $cmd (i32.const 0x02))))
        (i32.store offset=16 (local.get $d)
          (if (result i32) (i32.eqz (local.get $cmd))
            (then (local.get $other))
            (else
              (if (result i32) (i32.eq (local.get $cmd) (i32.const 0x01))
                (then (i32.const 0x02000001))
                (else (i32.const 0x03000000))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0)))
