/*
 * usb_cdc.h - the USB CDC-ACM function of the real boards (private to firmware/boards/): its descriptors
 * (usb_cdc_desc.c) and its control-request state machine (usb_cdc_ctrl.c). Both are plain C without registers;
 * a device-controller driver (usbd_nrf52.c) moves the bytes and does what the state machine decides.
 *
 * Sources: Universal Serial Bus Specification 2.0 (chapter 9: descriptors 9.6, standard requests 9.4, device
 * states 9.1), the Interface Association Descriptor ECN (IAD, class 0xEF/0x02/0x01 on the device), and the CDC
 * 1.2 specification with its PSTN subclass 1.2 (Abstract Control Model: functional descriptors, requests
 * SET_LINE_CODING 0x20, GET_LINE_CODING 0x21, SET_CONTROL_LINE_STATE 0x22).
 *
 * The function: interface 0 (Communications, ACM) with an interrupt IN notification endpoint, interface 1
 * (CDC Data) with a bulk OUT and a bulk IN endpoint, tied together by an IAD.
 */
#ifndef TH_USB_CDC_H
#define TH_USB_CDC_H

#include <stdint.h>

/* USB ids. The Nano 33 BLE's build uses Arduino's application id 2341:805a (see docs/real-boards.md: every
 * Arduino sketch on this board enumerates with it, and the Arduino IDE and PlatformIO look for it to do the
 * 1200-baud touch); a board without its own id may set these to a test id. */
#ifndef TH_USB_VID
#define TH_USB_VID 0x1209u /* pid.codes */
#endif
#ifndef TH_USB_PID
#define TH_USB_PID 0x0001u /* pid.codes test PID: for tests only */
#endif
#define TH_USB_BCD_DEVICE 0x0100u

/* Endpoints (addresses as in the descriptors: bit 7 = IN). */
#define TH_USB_EP0_SIZE 64u     /* bMaxPacketSize0 */
#define TH_USB_EP_NOTIFY 0x82u  /* interrupt IN, interface 0 */
#define TH_USB_EP_DATA_OUT 0x01u /* bulk OUT, interface 1 */
#define TH_USB_EP_DATA_IN 0x81u  /* bulk IN, interface 1 */
#define TH_USB_NOTIFY_SIZE 16u  /* a SERIAL_STATE notification is 10 bytes */
#define TH_USB_BULK_SIZE 64u    /* the largest full-speed bulk packet */

/* String descriptor indices. */
#define TH_USB_STR_LANGID 0u
#define TH_USB_STR_MANUFACTURER 1u
#define TH_USB_STR_PRODUCT 2u
#define TH_USB_STR_SERIAL 3u
#define TH_USB_STR_COUNT 4u

#define TH_USB_DEVICE_DESC_BYTES 18u
#define TH_USB_CONFIG_DESC_BYTES 75u /* 9 config + 8 IAD + 9 + 5 + 5 + 4 + 5 + 7 (interface 0) + 9 + 7 + 7 */

/* Every fixed descriptor in one const table, so a host test can read it out of the ELF (th_usb_desc). */
typedef struct {
    uint8_t device[TH_USB_DEVICE_DESC_BYTES];
    uint8_t config[TH_USB_CONFIG_DESC_BYTES];
    uint8_t langid[4]; /* string descriptor 0: US English */
} th_usb_desc_t;

extern const th_usb_desc_t th_usb_desc;

/* The serial number string (16 upper-case hex digits), set once from the chip's unique id. */
void th_usb_set_serial(uint32_t hi, uint32_t lo);
/* Length of string descriptor `index` (0 if there is none) and its byte at `off` (UTF-16LE from ASCII). */
uint16_t th_usb_string_desc_len(uint8_t index);
uint8_t th_usb_string_desc_byte(uint8_t index, uint16_t off);

/* --- the control-request state machine ---------------------------------------------------------------- */

/* A SETUP packet (USB 2.0 table 9-2). */
typedef struct {
    uint8_t bm_request_type;
    uint8_t b_request;
    uint16_t w_value;
    uint16_t w_index;
    uint16_t w_length;
} th_usb_setup_t;

/* What the device controller must do with a request. */
#define TH_USB_STALL 0u     /* request error: stall EP0 */
#define TH_USB_ACK 1u       /* no data stage: complete the status stage */
#define TH_USB_IN 2u        /* send `len` bytes of `src` (clipped to wLength), then the status stage */
#define TH_USB_OUT 3u       /* receive `len` bytes, then hand them to th_usb_ctrl_data */
#define TH_USB_HW_STATUS 4u /* the controller completes this request by itself (the nRF USBD's SET_ADDRESS) */

/* Where IN data comes from. */
#define TH_USB_SRC_BYTES 0u  /* `data` */
#define TH_USB_SRC_STRING 1u /* string descriptor `string` */

/* Side effects on the endpoints, done by the controller before it completes the status stage. */
#define TH_USB_FX_NONE 0u
#define TH_USB_FX_CONFIGURE 1u   /* enable the function's endpoints, toggles to DATA0, arm OUT */
#define TH_USB_FX_DECONFIGURE 2u /* disable them */
#define TH_USB_FX_HALT 3u        /* stall endpoint `ep` */
#define TH_USB_FX_UNHALT 4u      /* clear its stall and reset its toggle to DATA0 */

typedef struct {
    uint8_t action;
    uint8_t effect;
    uint8_t ep;
    uint8_t src;
    uint8_t string;
    uint16_t len;
    const uint8_t *data;
} th_usb_reply_t;

/* Line state bits of SET_CONTROL_LINE_STATE (PSTN 6.3.12). */
#define TH_USB_DTR 0x01u
#define TH_USB_RTS 0x02u

/* The Arduino bootloader's 1200-baud touch: the host sets the line to this rate and drops DTR. */
#define TH_USB_TOUCH_BAUD 1200u

typedef struct {
    uint8_t configuration;  /* 0: default/address state; 1: configured */
    uint8_t line_state;     /* TH_USB_DTR | TH_USB_RTS as the host last set them */
    uint8_t halted;         /* bit 0: data IN, bit 1: data OUT, bit 2: notification IN */
    uint8_t bootloader;     /* 1 while the line asks for the bootloader (1200 baud and DTR low) */
    uint8_t line_coding[7]; /* dwDTERate (LE32), bCharFormat, bParityType, bDataBits (PSTN 6.3.11) */
    uint8_t reply[8];       /* small IN replies (status, configuration, line coding) */
} th_usb_ctrl_t;

/* Power-on / bus-reset state: unconfigured, DTR low, 115200 8N1. */
void th_usb_ctrl_reset(th_usb_ctrl_t *c);
/* The reply to a SETUP packet. */
th_usb_reply_t th_usb_ctrl_setup(th_usb_ctrl_t *c, const th_usb_setup_t *s);
/* The data stage of an OUT request (`n` bytes) has arrived: TH_USB_ACK or TH_USB_STALL. */
th_usb_reply_t th_usb_ctrl_data(th_usb_ctrl_t *c, const th_usb_setup_t *s, const uint8_t *data, uint16_t n);
/* The line's baud rate (dwDTERate). */
uint32_t th_usb_ctrl_baud(const th_usb_ctrl_t *c);

#endif /* TH_USB_CDC_H */
