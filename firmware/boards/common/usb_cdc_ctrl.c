/*
 * Control requests of the CDC-ACM device: the standard requests of USB 2.0 section 9.4 for a one-configuration,
 * two-interface device, and the ACM class requests of PSTN 1.2 section 6.3 (line coding, control line state).
 * It decides; the device-controller driver moves bytes and touches registers (usbd_nrf52.c).
 *
 * The Arduino bootloader's 1200-baud touch: the host opens the port at 1200 baud and closes it, that is
 * SET_LINE_CODING with dwDTERate = 1200 and SET_CONTROL_LINE_STATE with DTR low, in either order (Linux raises
 * DTR on open, sets the rate, then drops DTR; other hosts set the rate first). `bootloader` follows the pair:
 * set while the rate is 1200 and DTR is low, cleared when either changes, so the driver can reset once it has
 * held for a moment.
 */
#include <stdint.h>

#include "usb_cdc.h"

#if defined(TH_CHANNELS) && defined(TH_CHAN_USB)

/* bmRequestType fields (USB 2.0 table 9-2) */
#define DIR_IN 0x80u
#define TYPE_MASK 0x60u
#define TYPE_STANDARD 0x00u
#define TYPE_CLASS 0x20u
#define RECIP_MASK 0x1Fu
#define RECIP_DEVICE 0x00u
#define RECIP_INTERFACE 0x01u
#define RECIP_ENDPOINT 0x02u

/* Standard requests (table 9-4), descriptor types (table 9-5), features (table 9-6) */
#define GET_STATUS 0x00u
#define CLEAR_FEATURE 0x01u
#define SET_FEATURE 0x03u
#define SET_ADDRESS 0x05u
#define GET_DESCRIPTOR 0x06u
#define GET_CONFIGURATION 0x08u
#define SET_CONFIGURATION 0x09u
#define GET_INTERFACE 0x0Au
#define SET_INTERFACE 0x0Bu
#define DESC_DEVICE 0x01u
#define DESC_CONFIGURATION 0x02u
#define DESC_STRING 0x03u
#define FEATURE_ENDPOINT_HALT 0x00u

/* ACM class requests (PSTN 6.3) */
#define SET_LINE_CODING 0x20u
#define GET_LINE_CODING 0x21u
#define SET_CONTROL_LINE_STATE 0x22u

#define N_INTERFACES 2u
#define COMM_INTERFACE 0u

static th_usb_reply_t reply(uint8_t action)
{
    th_usb_reply_t r = {action, TH_USB_FX_NONE, 0u, TH_USB_SRC_BYTES, 0u, 0u, 0};
    return r;
}

static th_usb_reply_t in_bytes(const uint8_t *data, uint16_t len)
{
    th_usb_reply_t r = reply(TH_USB_IN);
    r.data = data;
    r.len = len;
    return r;
}

/* Bit of `halted` for a function endpoint, 0 for an address that is not one. */
static uint8_t halt_bit(uint16_t ep)
{
    switch (ep) {
    case TH_USB_EP_DATA_IN:
        return 0x01u;
    case TH_USB_EP_DATA_OUT:
        return 0x02u;
    case TH_USB_EP_NOTIFY:
        return 0x04u;
    default:
        return 0u;
    }
}

uint32_t th_usb_ctrl_baud(const th_usb_ctrl_t *c)
{
    return (uint32_t)c->line_coding[0] | ((uint32_t)c->line_coding[1] << 8) | ((uint32_t)c->line_coding[2] << 16)
           | ((uint32_t)c->line_coding[3] << 24);
}

static void touch_check(th_usb_ctrl_t *c)
{
    c->bootloader = th_usb_ctrl_baud(c) == TH_USB_TOUCH_BAUD && (c->line_state & TH_USB_DTR) == 0u;
}

void th_usb_ctrl_reset(th_usb_ctrl_t *c)
{
    static const uint8_t line_115200_8n1[7] = {0x00u, 0xC2u, 0x01u, 0x00u, 0u, 0u, 8u};
    c->configuration = 0u;
    c->line_state = 0u;
    c->halted = 0u;
    c->bootloader = 0u;
    for (uint32_t i = 0; i < sizeof(c->line_coding); ++i) {
        c->line_coding[i] = line_115200_8n1[i];
    }
}

static th_usb_reply_t get_descriptor(const th_usb_setup_t *s)
{
    uint8_t type = (uint8_t)(s->w_value >> 8), index = (uint8_t)(s->w_value & 0xFFu);
    switch (type) {
    case DESC_DEVICE:
        return in_bytes(th_usb_desc.device, sizeof(th_usb_desc.device));
    case DESC_CONFIGURATION:
        return index == 0u ? in_bytes(th_usb_desc.config, sizeof(th_usb_desc.config)) : reply(TH_USB_STALL);
    case DESC_STRING: {
        uint16_t len = th_usb_string_desc_len(index);
        if (len == 0u) {
            return reply(TH_USB_STALL);
        }
        th_usb_reply_t r = reply(TH_USB_IN);
        r.src = TH_USB_SRC_STRING;
        r.string = index;
        r.len = len;
        return r;
    }
    default: /* device qualifier, other speed: a full-speed-only device answers with a request error (9.6.2) */
        return reply(TH_USB_STALL);
    }
}

static th_usb_reply_t standard(th_usb_ctrl_t *c, const th_usb_setup_t *s)
{
    uint8_t recip = s->bm_request_type & RECIP_MASK;
    int in = (s->bm_request_type & DIR_IN) != 0u;
    switch (s->b_request) {
    case GET_STATUS:
        if (!in || s->w_length != 2u) {
            break;
        }
        c->reply[0] = 0u; /* device: bus powered, no remote wakeup; interface: reserved zero */
        c->reply[1] = 0u;
        if (recip == RECIP_DEVICE) {
            return in_bytes(c->reply, 2u);
        }
        if (recip == RECIP_INTERFACE && c->configuration != 0u && s->w_index < N_INTERFACES) {
            return in_bytes(c->reply, 2u);
        }
        if (recip == RECIP_ENDPOINT && (s->w_index & 0x7Fu) == 0u) {
            return in_bytes(c->reply, 2u); /* EP0 is never halted */
        }
        if (recip == RECIP_ENDPOINT && c->configuration != 0u && halt_bit(s->w_index) != 0u) {
            c->reply[0] = (c->halted & halt_bit(s->w_index)) != 0u;
            return in_bytes(c->reply, 2u);
        }
        break;
    case CLEAR_FEATURE:
    case SET_FEATURE:
        if (in || recip != RECIP_ENDPOINT || s->w_value != FEATURE_ENDPOINT_HALT) {
            break; /* remote wakeup is not offered, test mode is high-speed only */
        }
        if ((s->w_index & 0x7Fu) == 0u && s->b_request == CLEAR_FEATURE) {
            return reply(TH_USB_ACK);
        }
        if (c->configuration != 0u && halt_bit(s->w_index) != 0u) {
            th_usb_reply_t r = reply(TH_USB_ACK);
            r.ep = (uint8_t)s->w_index;
            if (s->b_request == SET_FEATURE) {
                c->halted |= halt_bit(s->w_index);
                r.effect = TH_USB_FX_HALT;
            } else {
                c->halted &= (uint8_t)~halt_bit(s->w_index);
                r.effect = TH_USB_FX_UNHALT;
            }
            return r;
        }
        break;
    case SET_ADDRESS:
        if (!in && recip == RECIP_DEVICE && s->w_value <= 127u) {
            return reply(TH_USB_HW_STATUS);
        }
        break;
    case GET_DESCRIPTOR:
        if (in && recip == RECIP_DEVICE) {
            return get_descriptor(s);
        }
        break;
    case GET_CONFIGURATION:
        if (in && recip == RECIP_DEVICE && s->w_length == 1u) {
            c->reply[0] = c->configuration;
            return in_bytes(c->reply, 1u);
        }
        break;
    case SET_CONFIGURATION:
        if (!in && recip == RECIP_DEVICE && s->w_value <= 1u) {
            th_usb_reply_t r = reply(TH_USB_ACK);
            c->configuration = (uint8_t)s->w_value;
            c->halted = 0u;
            c->line_state = 0u; /* a new configuration starts with the port closed */
            c->bootloader = 0u;
            r.effect = s->w_value ? TH_USB_FX_CONFIGURE : TH_USB_FX_DECONFIGURE;
            return r;
        }
        break;
    case GET_INTERFACE:
        if (in && recip == RECIP_INTERFACE && c->configuration != 0u && s->w_index < N_INTERFACES
            && s->w_length == 1u) {
            c->reply[0] = 0u; /* one alternate setting per interface */
            return in_bytes(c->reply, 1u);
        }
        break;
    case SET_INTERFACE:
        if (!in && recip == RECIP_INTERFACE && c->configuration != 0u && s->w_index < N_INTERFACES
            && s->w_value == 0u) {
            return reply(TH_USB_ACK);
        }
        break;
    default:
        break;
    }
    return reply(TH_USB_STALL);
}

static th_usb_reply_t class_request(th_usb_ctrl_t *c, const th_usb_setup_t *s)
{
    int in = (s->bm_request_type & DIR_IN) != 0u;
    if ((s->bm_request_type & RECIP_MASK) != RECIP_INTERFACE || s->w_index != COMM_INTERFACE
        || c->configuration == 0u) {
        return reply(TH_USB_STALL);
    }
    switch (s->b_request) {
    case SET_LINE_CODING:
        if (!in && s->w_length == sizeof(c->line_coding)) {
            th_usb_reply_t r = reply(TH_USB_OUT);
            r.len = sizeof(c->line_coding);
            return r;
        }
        break;
    case GET_LINE_CODING:
        if (in && s->w_length >= 1u) {
            for (uint32_t i = 0; i < sizeof(c->line_coding); ++i) {
                c->reply[i] = c->line_coding[i];
            }
            return in_bytes(c->reply, sizeof(c->line_coding));
        }
        break;
    case SET_CONTROL_LINE_STATE:
        if (!in && s->w_length == 0u) {
            c->line_state = (uint8_t)(s->w_value & (TH_USB_DTR | TH_USB_RTS));
            touch_check(c);
            return reply(TH_USB_ACK);
        }
        break;
    default: /* SEND_BREAK and the rest: not offered in bmCapabilities */
        break;
    }
    return reply(TH_USB_STALL);
}

th_usb_reply_t th_usb_ctrl_setup(th_usb_ctrl_t *c, const th_usb_setup_t *s)
{
    switch (s->bm_request_type & TYPE_MASK) {
    case TYPE_STANDARD:
        return standard(c, s);
    case TYPE_CLASS:
        return class_request(c, s);
    default:
        return reply(TH_USB_STALL);
    }
}

th_usb_reply_t th_usb_ctrl_data(th_usb_ctrl_t *c, const th_usb_setup_t *s, const uint8_t *data, uint16_t n)
{
    if ((s->bm_request_type & TYPE_MASK) == TYPE_CLASS && s->b_request == SET_LINE_CODING
        && n == sizeof(c->line_coding)) {
        uint32_t rate = (uint32_t)data[0] | ((uint32_t)data[1] << 8) | ((uint32_t)data[2] << 16)
                        | ((uint32_t)data[3] << 24);
        if (rate == 0u || data[4] > 2u || data[5] > 4u) { /* stop bits 0-2, parity 0-4 (PSTN table 17) */
            return reply(TH_USB_STALL);
        }
        for (uint32_t i = 0; i < sizeof(c->line_coding); ++i) {
            c->line_coding[i] = data[i];
        }
        touch_check(c);
        return reply(TH_USB_ACK);
    }
    return reply(TH_USB_STALL);
}

#endif /* TH_CHANNELS && TH_CHAN_USB */
