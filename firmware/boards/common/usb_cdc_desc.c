/*
 * The CDC-ACM function's descriptors (USB 2.0 section 9.6, the IAD ECN, CDC 1.2 section 5, PSTN 1.2 section 5.3),
 * one const table the host test reads out of the ELF, and the string descriptors built from ASCII on the fly
 * (UTF-16LE: each character followed by a zero byte), so nothing but the serial number lives in RAM.
 */
#include <stdint.h>

#include "usb_cdc.h"

#if defined(TH_CHANNELS) && defined(TH_CHAN_USB)

#define LO(x) ((uint8_t)((x) & 0xFFu))
#define HI(x) ((uint8_t)(((x) >> 8) & 0xFFu))

#ifndef TH_USB_MANUFACTURER
#define TH_USB_MANUFACTURER "tinyhil"
#endif
#ifndef TH_USB_PRODUCT
#ifdef TH_BOARD_NAME
#define TH_USB_PRODUCT "tinyhil " TH_BOARD_NAME
#else
#define TH_USB_PRODUCT "tinyhil"
#endif
#endif

/* bMaxPower in 2 mA units: the board with its sensors draws well under 100 mA. */
#define MAX_POWER_2MA 50u

const th_usb_desc_t th_usb_desc = {
    .device = {
        18u, 0x01u,                          /* bLength, DEVICE */
        LO(0x0200u), HI(0x0200u),            /* bcdUSB 2.0 */
        0xEFu, 0x02u, 0x01u,                 /* Miscellaneous / Common Class / IAD: functions carry their class */
        TH_USB_EP0_SIZE,                     /* bMaxPacketSize0 */
        LO(TH_USB_VID), HI(TH_USB_VID),
        LO(TH_USB_PID), HI(TH_USB_PID),
        LO(TH_USB_BCD_DEVICE), HI(TH_USB_BCD_DEVICE),
        TH_USB_STR_MANUFACTURER, TH_USB_STR_PRODUCT, TH_USB_STR_SERIAL,
        1u,                                  /* bNumConfigurations */
    },
    .config = {
        /* Configuration (9.6.3) */
        9u, 0x02u, LO(TH_USB_CONFIG_DESC_BYTES), HI(TH_USB_CONFIG_DESC_BYTES),
        2u,                                  /* bNumInterfaces */
        1u,                                  /* bConfigurationValue */
        0u,                                  /* iConfiguration */
        0x80u,                               /* bmAttributes: bus powered, no remote wakeup */
        MAX_POWER_2MA,
        /* Interface Association (IAD ECN): interfaces 0-1 are one CDC ACM function */
        8u, 0x0Bu, 0u, 2u, 0x02u, 0x02u, 0x00u, 0u,
        /* Interface 0: Communications class, Abstract Control Model, no class-specific protocol */
        9u, 0x04u, 0u, 0u, 1u, 0x02u, 0x02u, 0x00u, 0u,
        /* Header functional descriptor (CDC 5.2.3.1): CDC 1.10 */
        5u, 0x24u, 0x00u, LO(0x0110u), HI(0x0110u),
        /* Call Management (PSTN 5.3.1): no call management, data interface 1 */
        5u, 0x24u, 0x01u, 0x00u, 1u,
        /* Abstract Control Management (PSTN 5.3.2): line coding and control line state requests */
        4u, 0x24u, 0x02u, 0x02u,
        /* Union (CDC 5.2.3.2): control interface 0, subordinate interface 1 */
        5u, 0x24u, 0x06u, 0u, 1u,
        /* Notification endpoint: interrupt IN, polled every 16 ms */
        7u, 0x05u, TH_USB_EP_NOTIFY, 0x03u, LO(TH_USB_NOTIFY_SIZE), HI(TH_USB_NOTIFY_SIZE), 16u,
        /* Interface 1: CDC Data */
        9u, 0x04u, 1u, 0u, 2u, 0x0Au, 0x00u, 0x00u, 0u,
        /* Data endpoints: bulk OUT and bulk IN */
        7u, 0x05u, TH_USB_EP_DATA_OUT, 0x02u, LO(TH_USB_BULK_SIZE), HI(TH_USB_BULK_SIZE), 0u,
        7u, 0x05u, TH_USB_EP_DATA_IN, 0x02u, LO(TH_USB_BULK_SIZE), HI(TH_USB_BULK_SIZE), 0u,
    },
    .langid = {4u, 0x03u, LO(0x0409u), HI(0x0409u)}, /* US English */
};

const char th_usb_manufacturer[] = TH_USB_MANUFACTURER;
const char th_usb_product[] = TH_USB_PRODUCT;
static char serial[17] = "0000000000000000";

void th_usb_set_serial(uint32_t hi, uint32_t lo)
{
    static const char hex[] = "0123456789ABCDEF";
    for (uint32_t i = 0; i < 8u; ++i) {
        serial[i] = hex[(hi >> (28u - 4u * i)) & 0xFu];
        serial[8u + i] = hex[(lo >> (28u - 4u * i)) & 0xFu];
    }
}

static const char *ascii(uint8_t index)
{
    switch (index) {
    case TH_USB_STR_MANUFACTURER:
        return th_usb_manufacturer;
    case TH_USB_STR_PRODUCT:
        return th_usb_product;
    case TH_USB_STR_SERIAL:
        return serial;
    default:
        return 0;
    }
}

static uint16_t ascii_len(const char *s)
{
    uint16_t n = 0;
    while (s[n] != '\0' && n < 126u) { /* a descriptor holds at most (255 - 2) / 2 characters */
        ++n;
    }
    return n;
}

uint16_t th_usb_string_desc_len(uint8_t index)
{
    if (index == TH_USB_STR_LANGID) {
        return sizeof(th_usb_desc.langid);
    }
    const char *s = ascii(index);
    return s ? (uint16_t)(2u + 2u * ascii_len(s)) : 0u;
}

uint8_t th_usb_string_desc_byte(uint8_t index, uint16_t off)
{
    if (index == TH_USB_STR_LANGID) {
        return off < sizeof(th_usb_desc.langid) ? th_usb_desc.langid[off] : 0u;
    }
    uint16_t len = th_usb_string_desc_len(index);
    if (off >= len) {
        return 0u;
    }
    if (off == 0u) {
        return (uint8_t)len;
    }
    if (off == 1u) {
        return 0x03u; /* STRING */
    }
    return (off & 1u) ? 0u : (uint8_t)ascii(index)[(off - 2u) / 2u];
}

#endif /* TH_CHANNELS && TH_CHAN_USB */
