/**
 * A custom CPU template exactly as Firecracker's users write one: the text of Firecracker
 * v1.16.1's tests/data/custom_cpu_templates/T2A.json (its T2A static template in the JSON
 * format of PUT /cpu-config; docs/cpu_templates/cpu-templates.md). The unit tier checks it
 * equals Kindling's static T2A; the KVM tier boots a guest with it.
 */
export const T2A_JSON = `{
  "cpuid_modifiers": [
    {
      "leaf": "0x1",
      "subleaf": "0x0",
      "flags": 0,
      "modifiers": [
        {
          "register": "eax",
          "bitmap": "0bxxxx000000000011xx00011011110010"
        },
        {
          "register": "ecx",
          "bitmap": "0bxxxxxxxxxxxxx0xx00xx00x0000000xx"
        },
        {
          "register": "edx",
          "bitmap": "0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx"
        }
      ]
    },
    {
      "leaf": "0x7",
      "subleaf": "0x0",
      "flags": 1,
      "modifiers": [
        {
          "register": "ebx",
          "bitmap": "0b00000000000x000000x00x1xxxx0x0xx"
        },
        {
          "register": "ecx",
          "bitmap": "0bx0xxxxxxx0xxxxx0x0x00000x0x0000x"
        },
        {
          "register": "edx",
          "bitmap": "0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx"
        }
      ]
    },
    {
      "leaf": "0xd",
      "subleaf": "0x0",
      "flags": 1,
      "modifiers": [
        {
          "register": "eax",
          "bitmap": "0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx"
        }
      ]
    },
    {
      "leaf": "0xd",
      "subleaf": "0x1",
      "flags": 1,
      "modifiers": [
        {
          "register": "eax",
          "bitmap": "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x"
        }
      ]
    },
    {
      "leaf": "0x80000001",
      "subleaf": "0x0",
      "flags": 0,
      "modifiers": [
        {
          "register": "ecx",
          "bitmap": "0bxx0xxxxxxxxxxxxxxxxxxxx000xxx0xx"
        },
        {
          "register": "edx",
          "bitmap": "0bxxxxx00xx0xxxxxxxxxxxxxxxxxxxxxx"
        }
      ]
    },
    {
      "leaf": "0x80000008",
      "subleaf": "0x0",
      "flags": 0,
      "modifiers": [
        {
          "register": "ebx",
          "bitmap": "0bxxxxxxxxxxx111xxxxxxxx0xxxxxx1x0"
        }
      ]
    }
  ],
  "msr_modifiers": []
}
`;
