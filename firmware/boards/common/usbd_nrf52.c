/*
 * USB CDC-ACM over the nRF52840 USBD (nRF52840 Product Specification v1.x, section 6.35 "USBD"), polled: the
 * firmware services the peripheral whenever it waits for a host byte or writes one, and never takes an
 * interrupt, so an inference's cycle counts stay undisturbed. Control requests are decided by usb_cdc_ctrl.c;
 * this file moves the bytes. Every register access goes through usbd_hal.h, so the same code runs against a
 * register model on the host (tests/test_usb_cdc.py).
 *
 * Power-up (PS "USBD power-up sequence"; POWER "USB supply"): VBUS present (USBREGSTATUS.VBUSDETECT, event
 * USBDETECTED) -> ENABLE, wait for USBEVENT with EVENTCAUSE.READY -> the USB regulator settled
 * (USBREGSTATUS.OUTPUTRDY, event USBPWRRDY) -> HFXO running (the USBD's 48 MHz clock needs the crystal; the
 * board starts it, this checks HFCLKSTAT) -> USBPULLUP: the host sees the device. VBUS going away
 * (USBREMOVED) disables it again, and it comes back when the cable does.
 *
 * Errata (nRF52840 Errata: every production revision): [187] "USB cannot be enabled" and [211] "Device remains
 * in SUSPEND too long": 0x4006ED14 = 3 from before ENABLE while the USBD is enabled; [171] "USBD might not reach
 * its active state": 0x4006EC14 = 0xC0 from before ENABLE until READY; both behind the 0x4006EC00 = 0x9375 key
 * when that register reads 0. [199] "USBD cannot receive tasks during DMA": 0x40027C1C = 0x82 while an EasyDMA
 * transfer runs. The ISO erratum [166] does not concern a device without isochronous endpoints.
 *
 * Control transfers (PS "Control transfers"): SETUP arrives in BMREQUESTTYPE..WLENGTHH with EP0SETUP. IN data:
 * EasyDMA each (<= 64 byte) chunk from RAM (STARTEPIN[0] -> ENDEPIN[0]); the host took it at EP0DATADONE;
 * after the last chunk EP0STATUS. OUT data: EP0RCVOUT lets one packet in (EP0DATADONE, SIZE.EPOUT[0] bytes),
 * STARTEPOUT[0] -> ENDEPOUT[0] moves it to RAM, then EP0STATUS. No data: EP0STATUS. Error: EP0STALL. The USBD
 * answers SET_ADDRESS by itself. Bulk: IN packets are moved with STARTEPIN[1], and the host acknowledged one
 * when EPDATASTATUS.EPIN1 is set; an OUT packet is announced by EPDATASTATUS.EPOUT1 with SIZE.EPOUT[1] bytes
 * and fetched with STARTEPOUT[1] (the endpoint NAKs the host until then: flow control for free).
 *
 * Bulk IN packets are at most 63 bytes: a short packet ends the host's transfer, so a reply never waits in a
 * host buffer for the next packet (a full 64-byte packet would need a zero-length packet after it).
 *
 * The Arduino bootloader's 1200-baud touch (usb_cdc_ctrl.c) resets into the bootloader once it has held for
 * TH_USB_TOUCH_DELAY_MS: GPREGRET = 0xB0 is what the Nano 33 BLE bootloader checks to stay
 * in the bootloader after a reset (its main() compares POWER.GPREGRET with 0xB0: bootloaders/nano33ble in
 * arduino/ArduinoCore-mbed; the core's variant sets DFU_MAGIC_SERIAL_ONLY_RESET = 0xb0 for the same touch).
 */
#include <stdint.h>

#include "channels.h"
#include "usb_cdc.h"
#include "usbd_hal.h"

#if defined(TH_CHANNELS) && defined(TH_CHAN_USB) && defined(TH_USBD_NRF52)

/* USBD registers (PS 6.35.13), base 0x40027000. */
#define USBD 0x40027000u
#define TASKS_STARTEPIN(n) (USBD + 0x004u + 4u * (n))
#define TASKS_STARTEPOUT(n) (USBD + 0x028u + 4u * (n))
#define TASKS_EP0RCVOUT (USBD + 0x04Cu)
#define TASKS_EP0STATUS (USBD + 0x050u)
#define TASKS_EP0STALL (USBD + 0x054u)
#define EVENTS_USBRESET (USBD + 0x100u)
#define EVENTS_ENDEPIN(n) (USBD + 0x108u + 4u * (n))
#define EVENTS_EP0DATADONE (USBD + 0x128u)
#define EVENTS_ENDEPOUT(n) (USBD + 0x130u + 4u * (n))
#define EVENTS_USBEVENT (USBD + 0x158u)
#define EVENTS_EP0SETUP (USBD + 0x15Cu)
#define EVENTS_EPDATA (USBD + 0x160u)
#define EVENTCAUSE (USBD + 0x400u)
#define EPDATASTATUS (USBD + 0x46Cu)
#define BMREQUESTTYPE (USBD + 0x480u)
#define BREQUEST (USBD + 0x484u)
#define WVALUEL (USBD + 0x488u)
#define WVALUEH (USBD + 0x48Cu)
#define WINDEXL (USBD + 0x490u)
#define WINDEXH (USBD + 0x494u)
#define WLENGTHL (USBD + 0x498u)
#define WLENGTHH (USBD + 0x49Cu)
#define SIZE_EPOUT(n) (USBD + 0x4A0u + 4u * (n))
#define ENABLE (USBD + 0x500u)
#define USBPULLUP (USBD + 0x504u)
#define DTOGGLE (USBD + 0x50Cu)
#define EPINEN (USBD + 0x510u)
#define EPOUTEN (USBD + 0x514u)
#define EPSTALL (USBD + 0x518u)
#define EPIN_PTR(n) (USBD + 0x600u + 0x14u * (n))
#define EPIN_MAXCNT(n) (USBD + 0x604u + 0x14u * (n))
#define EPOUT_PTR(n) (USBD + 0x700u + 0x14u * (n))
#define EPOUT_MAXCNT(n) (USBD + 0x704u + 0x14u * (n))

#define EVENTCAUSE_READY (1u << 11)
#define EPDATA_IN(n) (1u << (n))
#define EPDATA_OUT(n) (1u << (16u + (n)))
#define EPSTALL_IN (1u << 7)
#define EPSTALL_STALL (1u << 8)
#define DTOGGLE_IN (1u << 7)
#define DTOGGLE_DATA0 (1u << 8)

/* POWER and CLOCK share the block at 0x40000000 (PS sections "POWER" and "CLOCK"). */
#define CLOCK_TASKS_HFCLKSTART 0x40000000u
#define POWER_EVENTS_USBDETECTED 0x4000011Cu
#define POWER_EVENTS_USBREMOVED 0x40000120u
#define POWER_EVENTS_USBPWRRDY 0x40000124u
#define CLOCK_HFCLKSTAT 0x4000040Cu
#define POWER_USBREGSTATUS 0x40000438u
#define POWER_GPREGRET 0x4000051Cu
#define USBREG_VBUSDETECT (1u << 0)
#define USBREG_OUTPUTRDY (1u << 1)
#define HFCLK_XTAL_RUNNING ((1u << 16) | (1u << 0)) /* STATE = running, SRC = crystal */

#define FICR_DEVICEID0 0x10000060u
#define FICR_DEVICEID1 0x10000064u
#define DWT_CYCCNT 0xE0001004u

#define ERRATA_KEY_REG 0x4006EC00u
#define ERRATA_KEY 0x00009375u
#define ERRATA_171_REG 0x4006EC14u
#define ERRATA_187_REG 0x4006ED14u
#define ERRATA_199_REG 0x40027C1Cu

/* The Arduino Nano 33 BLE bootloader stays in the bootloader after a reset with this in GPREGRET. */
#define ARDUINO_BOOTLOADER_GPREGRET 0xB0u

/* Endpoint numbers of the function (usb_cdc.h has their addresses). */
#define EP_DATA (TH_USB_EP_DATA_IN & 0x7u)
#define EP_NOTIFY (TH_USB_EP_NOTIFY & 0x7u)

#define TX_PACKET 63u
#define SPIN_LIMIT 100000u /* EasyDMA of 64 bytes and USBD READY take microseconds; a dead peripheral cannot hang us */
/* The touch must hold this long: the host's request completes first, and an open that sends a leftover 1200-baud
 * line coding just before it raises DTR (Linux's cdc-acm can) is not taken for a touch. 250 ms as Arduino's SAMD
 * core waits. */
#ifndef TH_USB_TOUCH_DELAY_MS
#define TH_USB_TOUCH_DELAY_MS 250u
#endif
#define TOUCH_DELAY_CYCLES ((uint32_t)((uint64_t)TH_CORE_HZ * TH_USB_TOUCH_DELAY_MS / 1000u))
#ifndef TH_USB_TOUCH_STOPPED_POLLS
#define TH_USB_TOUCH_STOPPED_POLLS 200000u /* polls that saw the cycle counter stand still: the delay without it */
#endif

enum { PWR_OFF, PWR_WAIT_REGULATOR, PWR_ON };
enum { EP0_IDLE, EP0_IN, EP0_OUT };

static struct {
    uint8_t pwr;
    uint8_t hfxo_requested;
    th_usb_ctrl_t ctrl;
    th_usb_setup_t setup; /* the control transfer in progress */
    uint8_t ep0;          /* EP0_IDLE / EP0_IN / EP0_OUT */
    uint8_t ep0_src;
    uint8_t ep0_string;
    uint8_t ep0_zlp; /* a zero-length packet still ends the IN data stage */
    const uint8_t *ep0_data;
    uint16_t ep0_len;
    uint16_t ep0_off;
    uint8_t in_busy;     /* the last data IN packet is not acknowledged yet */
    uint8_t out_pending; /* a data OUT packet waits in the USBD */
    uint8_t tx_len;
    uint8_t rx_len;
    uint8_t rx_pos;
    uint8_t touch_armed;
    uint32_t touch_t0;
    uint32_t touch_last;
    uint32_t touch_polls;
} u;

/* EasyDMA reaches RAM only: every byte to or from an endpoint passes through these. */
static uint8_t ep0_buf[TH_USB_EP0_SIZE] __attribute__((aligned(4)));
static uint8_t tx_buf[TH_USB_BULK_SIZE] __attribute__((aligned(4)));
static uint8_t rx_buf[TH_USB_BULK_SIZE] __attribute__((aligned(4)));

static void errata_write(uint32_t reg, uint32_t value)
{
    if (th_hal_rd(ERRATA_KEY_REG) == 0u) {
        th_hal_wr(ERRATA_KEY_REG, ERRATA_KEY);
        th_hal_wr(reg, value);
        th_hal_wr(ERRATA_KEY_REG, ERRATA_KEY);
    } else {
        th_hal_wr(reg, value);
    }
}

/* One EasyDMA transfer, waited for (the USBD runs one at a time). 1 when its END event came. */
static int dma(uint32_t start_task, uint32_t end_event)
{
    th_hal_wr(end_event, 0u);
    th_hal_wr(ERRATA_199_REG, 0x82u);
    th_hal_dsb(); /* the buffer is in RAM before the peripheral reads it */
    th_hal_wr(start_task, 1u);
    uint32_t i = 0;
    while (th_hal_rd(end_event) == 0u && ++i < SPIN_LIMIT) {
    }
    th_hal_dsb();
    th_hal_wr(end_event, 0u);
    th_hal_wr(ERRATA_199_REG, 0u);
    return i < SPIN_LIMIT;
}

static void dtoggle_data0(uint32_t ep_addr)
{
    uint32_t sel = (ep_addr & 0x7u) | ((ep_addr & 0x80u) ? DTOGGLE_IN : 0u);
    th_hal_wr(DTOGGLE, sel); /* VALUE = Nop selects the endpoint */
    th_hal_wr(DTOGGLE, sel | DTOGGLE_DATA0);
}

static void stall(uint32_t ep_addr, int on)
{
    th_hal_wr(EPSTALL, (ep_addr & 0x7u) | ((ep_addr & 0x80u) ? EPSTALL_IN : 0u) | (on ? EPSTALL_STALL : 0u));
}

static void data_reset(void)
{
    u.in_busy = 0u;
    u.out_pending = 0u;
    u.tx_len = 0u;
    u.rx_len = 0u;
    u.rx_pos = 0u;
}

static void endpoints_off(void)
{
    th_hal_wr(EPINEN, 1u); /* EP0 only */
    th_hal_wr(EPOUTEN, 1u);
    data_reset();
}

static void endpoints_on(void)
{
    th_hal_wr(EPINEN, 1u | (1u << EP_DATA) | (1u << EP_NOTIFY));
    th_hal_wr(EPOUTEN, 1u | (1u << (TH_USB_EP_DATA_OUT & 0x7u)));
    static const uint8_t eps[3] = {TH_USB_EP_DATA_IN, TH_USB_EP_DATA_OUT, TH_USB_EP_NOTIFY};
    for (uint32_t i = 0; i < 3u; ++i) {
        stall(eps[i], 0);
        dtoggle_data0(eps[i]);
    }
    data_reset();
    th_hal_wr(SIZE_EPOUT(TH_USB_EP_DATA_OUT & 0x7u), 0u); /* the OUT endpoint may accept its first packet */
}

static void bus_reset(void)
{
    th_usb_ctrl_reset(&u.ctrl);
    u.ep0 = EP0_IDLE;
    u.touch_armed = 0u;
    endpoints_off();
}

static void usbd_enable(void)
{
    errata_write(ERRATA_187_REG, 3u);
    errata_write(ERRATA_171_REG, 0xC0u);
    th_hal_wr(EVENTCAUSE, EVENTCAUSE_READY);
    th_hal_wr(ENABLE, 1u);
    for (uint32_t i = 0; i < SPIN_LIMIT && (th_hal_rd(EVENTCAUSE) & EVENTCAUSE_READY) == 0u; ++i) {
    }
    th_hal_wr(EVENTCAUSE, EVENTCAUSE_READY);
    th_hal_wr(EVENTS_USBEVENT, 0u);
    errata_write(ERRATA_171_REG, 0u);
}

static void usbd_disable(void)
{
    th_hal_wr(USBPULLUP, 0u);
    th_hal_wr(ENABLE, 0u);
    errata_write(ERRATA_187_REG, 0u);
    u.pwr = PWR_OFF;
    bus_reset();
}

static int hfxo_running(void)
{
    if ((th_hal_rd(CLOCK_HFCLKSTAT) & HFCLK_XTAL_RUNNING) == HFCLK_XTAL_RUNNING) {
        return 1;
    }
    if (!u.hfxo_requested) {
        th_hal_wr(CLOCK_TASKS_HFCLKSTART, 1u);
        u.hfxo_requested = 1u;
    }
    return 0;
}

static void power_step(void)
{
    uint32_t reg = th_hal_rd(POWER_USBREGSTATUS);
    switch (u.pwr) {
    case PWR_OFF:
        if (reg & USBREG_VBUSDETECT) {
            th_hal_wr(POWER_EVENTS_USBDETECTED, 0u);
            usbd_enable();
            u.pwr = PWR_WAIT_REGULATOR;
        }
        break;
    case PWR_WAIT_REGULATOR:
        if ((reg & USBREG_VBUSDETECT) == 0u) {
            usbd_disable();
        } else if ((reg & USBREG_OUTPUTRDY) && hfxo_running()) {
            th_hal_wr(POWER_EVENTS_USBPWRRDY, 0u);
            bus_reset();
            th_hal_wr(USBPULLUP, 1u);
            u.pwr = PWR_ON;
        }
        break;
    default:
        if ((reg & USBREG_VBUSDETECT) == 0u) {
            th_hal_wr(POWER_EVENTS_USBREMOVED, 0u);
            usbd_disable();
        }
        break;
    }
}

/* --- endpoint 0 ------------------------------------------------------------------------------------------ */

static void ep0_send_chunk(void)
{
    uint16_t n = (uint16_t)(u.ep0_len - u.ep0_off);
    if (n > TH_USB_EP0_SIZE) {
        n = TH_USB_EP0_SIZE;
    }
    for (uint16_t i = 0; i < n; ++i) {
        uint16_t at = (uint16_t)(u.ep0_off + i);
        ep0_buf[i] = u.ep0_src == TH_USB_SRC_STRING ? th_usb_string_desc_byte(u.ep0_string, at) : u.ep0_data[at];
    }
    th_hal_wr_ptr(EPIN_PTR(0u), ep0_buf);
    th_hal_wr(EPIN_MAXCNT(0u), n);
    (void)dma(TASKS_STARTEPIN(0u), EVENTS_ENDEPIN(0u));
    u.ep0_off = (uint16_t)(u.ep0_off + n);
}

static void ep0_finish(th_usb_reply_t r)
{
    u.ep0 = EP0_IDLE;
    if (r.action != TH_USB_ACK) {
        th_hal_wr(TASKS_EP0STALL, 1u);
        return;
    }
    switch (r.effect) {
    case TH_USB_FX_CONFIGURE:
        endpoints_on();
        break;
    case TH_USB_FX_DECONFIGURE:
        endpoints_off();
        break;
    case TH_USB_FX_HALT:
        stall(r.ep, 1);
        break;
    case TH_USB_FX_UNHALT:
        stall(r.ep, 0);
        dtoggle_data0(r.ep);
        break;
    default:
        break;
    }
    th_hal_wr(TASKS_EP0STATUS, 1u);
}

static void on_setup(void)
{
    th_usb_setup_t *s = &u.setup;
    s->bm_request_type = (uint8_t)th_hal_rd(BMREQUESTTYPE);
    s->b_request = (uint8_t)th_hal_rd(BREQUEST);
    s->w_value = (uint16_t)((th_hal_rd(WVALUEH) << 8) | (th_hal_rd(WVALUEL) & 0xFFu));
    s->w_index = (uint16_t)((th_hal_rd(WINDEXH) << 8) | (th_hal_rd(WINDEXL) & 0xFFu));
    s->w_length = (uint16_t)((th_hal_rd(WLENGTHH) << 8) | (th_hal_rd(WLENGTHL) & 0xFFu));
    u.ep0 = EP0_IDLE; /* a SETUP ends whatever transfer was in progress */
    th_usb_reply_t r = th_usb_ctrl_setup(&u.ctrl, s);
    switch (r.action) {
    case TH_USB_IN:
        if (s->w_length == 0u) { /* no data stage asked for */
            th_hal_wr(TASKS_EP0STATUS, 1u);
            break;
        }
        u.ep0 = EP0_IN;
        u.ep0_src = r.src;
        u.ep0_string = r.string;
        u.ep0_data = r.data;
        u.ep0_len = r.len < s->w_length ? r.len : s->w_length;
        u.ep0_off = 0u;
        /* Less than asked for, in full packets: a zero-length packet tells the host that this is all. */
        u.ep0_zlp = u.ep0_len > 0u && u.ep0_len < s->w_length && u.ep0_len % TH_USB_EP0_SIZE == 0u;
        ep0_send_chunk();
        break;
    case TH_USB_OUT:
        if (r.len > TH_USB_EP0_SIZE) {
            th_hal_wr(TASKS_EP0STALL, 1u);
            break;
        }
        u.ep0 = EP0_OUT;
        u.ep0_len = r.len;
        u.ep0_off = 0u;
        th_hal_wr(TASKS_EP0RCVOUT, 1u);
        break;
    case TH_USB_HW_STATUS: /* SET_ADDRESS: the USBD takes the address and completes the status stage */
        break;
    default:
        ep0_finish(r);
        break;
    }
}

static void on_ep0_data_done(void)
{
    if (u.ep0 == EP0_IN) {
        if (u.ep0_off < u.ep0_len) {
            ep0_send_chunk();
        } else if (u.ep0_zlp) {
            u.ep0_zlp = 0u;
            ep0_send_chunk(); /* zero bytes */
        } else {
            u.ep0 = EP0_IDLE;
            th_hal_wr(TASKS_EP0STATUS, 1u);
        }
    } else if (u.ep0 == EP0_OUT) {
        uint32_t n = th_hal_rd(SIZE_EPOUT(0u));
        uint32_t room = (uint32_t)(TH_USB_EP0_SIZE - u.ep0_off);
        n = n < room ? n : room;
        th_hal_wr_ptr(EPOUT_PTR(0u), ep0_buf + u.ep0_off);
        th_hal_wr(EPOUT_MAXCNT(0u), n);
        (void)dma(TASKS_STARTEPOUT(0u), EVENTS_ENDEPOUT(0u));
        u.ep0_off = (uint16_t)(u.ep0_off + n);
        if (u.ep0_off >= u.ep0_len || n < TH_USB_EP0_SIZE) {
            ep0_finish(th_usb_ctrl_data(&u.ctrl, &u.setup, ep0_buf, u.ep0_off));
        } else {
            th_hal_wr(TASKS_EP0RCVOUT, 1u);
        }
    }
}

/* --- the 1200-baud touch ------------------------------------------------------------------------------------ */

static void touch_step(void)
{
    if (!u.ctrl.bootloader) {
        u.touch_armed = 0u;
        return;
    }
    uint32_t now = th_hal_rd(DWT_CYCCNT);
    if (!u.touch_armed) {
        u.touch_armed = 1u;
        u.touch_t0 = u.touch_last = now;
        u.touch_polls = 0u;
        return;
    }
    if (now == u.touch_last) {
        ++u.touch_polls; /* counted only while the counter stands still (a debugger cleared DEMCR.TRCENA) */
    }
    u.touch_last = now;
    if (now - u.touch_t0 >= TOUCH_DELAY_CYCLES || u.touch_polls >= TH_USB_TOUCH_STOPPED_POLLS) {
        th_hal_wr(USBPULLUP, 0u); /* the host sees the port go at once */
        th_hal_wr(POWER_GPREGRET, ARDUINO_BOOTLOADER_GPREGRET);
        th_hal_system_reset();
        u.touch_armed = 0u; /* only reached in the host model */
    }
}

/* --- the event loop --------------------------------------------------------------------------------------- */

static void service(void)
{
    power_step();
    if (u.pwr != PWR_ON) {
        return;
    }
    if (th_hal_rd(EVENTS_USBRESET)) {
        th_hal_wr(EVENTS_USBRESET, 0u);
        bus_reset();
    }
    if (th_hal_rd(EVENTS_USBEVENT)) { /* suspend / resume: nothing to do for a bus-powered polled device */
        th_hal_wr(EVENTS_USBEVENT, 0u);
        th_hal_wr(EVENTCAUSE, th_hal_rd(EVENTCAUSE)); /* write 1 to clear */
    }
    if (th_hal_rd(EVENTS_EP0DATADONE)) {
        th_hal_wr(EVENTS_EP0DATADONE, 0u);
        on_ep0_data_done();
    }
    if (th_hal_rd(EVENTS_EP0SETUP)) {
        th_hal_wr(EVENTS_EP0SETUP, 0u);
        on_setup();
    }
    if (th_hal_rd(EVENTS_EPDATA)) {
        th_hal_wr(EVENTS_EPDATA, 0u);
        uint32_t st = th_hal_rd(EPDATASTATUS);
        th_hal_wr(EPDATASTATUS, st); /* write 1 to clear */
        if (st & EPDATA_IN(EP_DATA)) {
            u.in_busy = 0u;
        }
        if (st & EPDATA_OUT(TH_USB_EP_DATA_OUT & 0x7u)) {
            u.out_pending = 1u;
        }
    }
    touch_step();
}

static int port_open(void)
{
    return u.pwr == PWR_ON && u.ctrl.configuration != 0u && (u.ctrl.line_state & TH_USB_DTR) != 0u
           && (u.ctrl.halted & 0x01u) == 0u;
}

/* Hands the collected bytes to the data IN endpoint if it is free; 1 when nothing is left to send. */
static int tx_flush(void)
{
    if (u.tx_len == 0u) {
        return 1;
    }
    if (u.in_busy) {
        return 0;
    }
    th_hal_wr_ptr(EPIN_PTR(EP_DATA), tx_buf);
    th_hal_wr(EPIN_MAXCNT(EP_DATA), u.tx_len);
    if (dma(TASKS_STARTEPIN(EP_DATA), EVENTS_ENDEPIN(EP_DATA))) {
        u.in_busy = 1u; /* after ENDEPIN the USBD holds the packet: tx_buf is free again */
    }
    u.tx_len = 0u;
    return 1;
}

static void rx_fetch(void)
{
    if (!u.out_pending || u.rx_pos < u.rx_len || (u.ctrl.halted & 0x02u)) {
        return;
    }
    uint32_t ep = TH_USB_EP_DATA_OUT & 0x7u;
    uint32_t n = th_hal_rd(SIZE_EPOUT(ep));
    n = n < TH_USB_BULK_SIZE ? n : TH_USB_BULK_SIZE;
    u.out_pending = 0u;
    u.rx_pos = 0u;
    u.rx_len = 0u;
    if (n == 0u) {
        th_hal_wr(SIZE_EPOUT(ep), 0u); /* a zero-length packet: nothing to move, accept the next */
        return;
    }
    th_hal_wr_ptr(EPOUT_PTR(ep), rx_buf);
    th_hal_wr(EPOUT_MAXCNT(ep), n);
    if (dma(TASKS_STARTEPOUT(ep), EVENTS_ENDEPOUT(ep))) {
        u.rx_len = (uint8_t)n;
    }
}

/* --- the channel (channels.h) ---------------------------------------------------------------------------- */

void th_usbcdc_init(void)
{
    if (th_hal_rd(ENABLE) != 0u) { /* left enabled by a bootloader: start from a detached, disabled USBD */
        th_hal_wr(USBPULLUP, 0u);
        th_hal_wr(ENABLE, 0u);
    }
    u.pwr = PWR_OFF;
    u.hfxo_requested = 0u;
    bus_reset();
    th_usb_set_serial(th_hal_rd(FICR_DEVICEID1), th_hal_rd(FICR_DEVICEID0));
    power_step();
}

int th_usbcdc_ready(void)
{
    return port_open();
}

void th_usbcdc_putc(char c)
{
    for (;;) {
        service();
        if (!port_open()) { /* nobody listens (port closed, cable out): drop, never block */
            u.tx_len = 0u;
            return;
        }
        if (u.tx_len < TX_PACKET) {
            break;
        }
        (void)tx_flush();
    }
    tx_buf[u.tx_len++] = (uint8_t)c;
    if (c == '\n' || u.tx_len == TX_PACKET) {
        (void)tx_flush();
    }
}

int th_usbcdc_poll(void)
{
    service();
    if (u.tx_len != 0u && port_open()) {
        (void)tx_flush(); /* a reply's tail that found the endpoint busy */
    }
    rx_fetch();
    if (u.rx_pos < u.rx_len) {
        return rx_buf[u.rx_pos++];
    }
    return -1;
}

#endif /* TH_CHANNELS && TH_CHAN_USB && TH_USBD_NRF52 */
